"""The sizer interface, and the base sizer: a workload used as given, its footprint measured.

A sizer answers two questions for the plan: which workload knobs give a live context of ``T`` tokens
(:meth:`Sizer.overrides`, at full size or as a 1:k miniature), and how much live context a workload
really has (:meth:`Sizer.measure`, from one streamed pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from exo_sim.spec import Spec
from exo_sim.trace_stats import trace_stats
from exo_sim.workloads.base import Workload


@dataclass(frozen=True)
class LiveContext:
    """How much context a workload keeps live, measured on its stream.

    ``tokens`` count what blocks carry; ``slot_tokens`` count whole blocks (a partial block fills a
    slot), which is what capacity must hold. ``what`` says which quantity it is: the live context of
    the active sessions in steady state, or (``footprint``) every distinct block of a workload with no
    notion of sessions — an upper bound of what is ever live, since blocks read once count too.
    """

    what: str
    mean_tokens: float
    peak_tokens: int
    mean_slot_tokens: float
    peak_slot_tokens: int
    requests: int
    references: int
    distinct_blocks: int
    footprint: bool = False


class Sizer:
    """Sizes a workload to a live context (this base: used as given, nothing sized).

    Args:
        cfg: the workload's config.
        block_tokens: tokens per block in the run.
        settings: the plan's settings (its sizing knobs).
    """

    kind: ClassVar[str] = ""
    scalable: ClassVar[bool] = False
    """Whether :meth:`overrides` can size the workload (and shrink it into a miniature)."""

    def __init__(self, cfg: Any, block_tokens: int, settings: Any) -> None:
        self.cfg = cfg
        self.block_tokens = block_tokens
        self.settings = settings

    @property
    def locality_blocks(self) -> float:
        """Blocks of one unit of locality (one session's live context); 1 for independent blocks."""
        return 1.0

    def overrides(self, target_tokens: int, scale: int = 1) -> dict[str, Any]:
        """``workload.<key>`` values giving ``target_tokens / scale`` tokens of live context (none here)."""
        return {}

    def describe(self, target_tokens: int) -> str:
        """How the workload was sized for ``target_tokens``, in one or two sentences."""
        return (
            f"The {self.cfg.kind} workload has no sizer: it is used as given, and its footprint (every "
            "distinct block it references) stands for its live context."
        )

    def measure(self, workload: Workload, spec: Spec, codec: Any) -> LiveContext:
        """The workload's footprint, from one streamed pass (:func:`exo_sim.trace_stats.trace_stats`)."""
        st = trace_stats(workload, spec, codec)
        slots = st.distinct_blocks * spec.block_tokens
        return LiveContext(
            what="footprint (every distinct block)",
            mean_tokens=float(st.distinct_tokens),
            peak_tokens=int(st.distinct_tokens),
            mean_slot_tokens=float(slots),
            peak_slot_tokens=int(slots),
            requests=st.requests,
            references=st.block_refs,
            distinct_blocks=st.distinct_blocks,
            footprint=True,
        )
