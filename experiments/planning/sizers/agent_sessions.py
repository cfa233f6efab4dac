"""Sizing ``agent_sessions``: enough concurrent sessions that their live context is the target.

Pseudocode::

    per_session = steady-state live tokens of one session, measured on a pilot run of the configured
                  shape (turns, tokens per turn), with the prefix taken out
    concurrency = round((target - prefix_tokens) / per_session)           (full size)
    miniature 1:k: concurrency / k sessions at once, the same request rate
    sessions    = max(session_generations x concurrency, min_sessions)
    request rate = (configured rate / configured concurrency) x full-size concurrency

The per-session rate is the configured one (each session takes a turn as often as in the configured
workload), so the request rate grows with the phase. A miniature keeps the full-size request rate:
each request is the same size, so links and codecs see the same load per second, over a run k times
shorter.

**Live context** at a request = the shared prefix + the context of every session that has started and
not yet taken its last turn (its earlier turns' tokens, this turn's included). It is averaged over the
steady state: from the first turn of the last session of the first wave until the last session
starts, while ``concurrency`` sessions are active.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import OmegaConf

from exo_sim.spec import Spec
from exo_sim.workloads import make_workload
from exo_sim.workloads.base import Workload
from experiments.planning.sizers import register
from experiments.planning.sizers.base import LiveContext, Sizer

PILOT_GENERATIONS = 8
"""Sessions per concurrent slot in the pilot run that measures one session's live context."""


@register
class AgentSessionsSizer(Sizer):
    """Sizes ``agent_sessions`` by its number of concurrent sessions (see the module docstring)."""

    kind = "agent_sessions"
    scalable = True

    def __init__(self, cfg: Any, block_tokens: int, settings: Any) -> None:
        super().__init__(cfg, block_tokens, settings)
        self._per_session: float | None = None

    @property
    def per_session_tokens(self) -> float:
        """Steady-state live tokens of one session, from a pilot run of the configured shape."""
        if self._per_session is None:
            c = int(self.cfg.concurrency)
            # the whole workload's sessions (no split): one session's context, not one engine's share
            pilot = OmegaConf.merge(self.cfg, {"sessions": PILOT_GENERATIONS * c, "engines": 1, "engine": 0})
            live = self.measure_stream(make_workload(pilot, self.block_tokens))
            self._per_session = max(1.0, (live.mean_tokens - int(self.cfg.prefix_tokens)) / c)
        return self._per_session

    @property
    def locality_blocks(self) -> float:
        """Blocks of one session's live context: a miniature's top tier must still hold several."""
        return self.per_session_tokens / self.block_tokens

    def _sessions(self, concurrency: int) -> int:
        return max(self.settings.session_generations * concurrency, self.settings.min_sessions)

    def concurrency(self, target_tokens: int) -> int:
        """Concurrent sessions whose live context is ``target_tokens`` (at least one)."""
        return max(1, round((target_tokens - int(self.cfg.prefix_tokens)) / self.per_session_tokens))

    def overrides(self, target_tokens: int, scale: int = 1) -> dict[str, Any]:
        """Concurrency, sessions and request rate for ``target_tokens`` (a 1:``scale`` miniature)."""
        full = self.concurrency(target_tokens)
        c = max(1, round(full / scale))
        per_session_rate = float(self.cfg.request_rate_per_s) / int(self.cfg.concurrency)
        return {
            "workload.concurrency": c,
            "workload.sessions": self._sessions(c),
            "workload.request_rate_per_s": round(per_session_rate * full, 6),
        }

    def describe(self, target_tokens: int) -> str:
        """How the sessions were sized."""
        c = self.cfg
        return (
            f"agent_sessions sized by concurrency: one session keeps {self.per_session_tokens:,.0f} tokens live "
            f"on average in steady state (turns {c.turns_min}-{c.turns_max}, {c.turn_tokens_min}-"
            f"{c.turn_tokens_max} tokens a turn, measured on a pilot run), so "
            f"{self.concurrency(target_tokens):,} concurrent sessions plus the {int(c.prefix_tokens):,}-token "
            f"shared prefix make {target_tokens:,} tokens; each session takes a turn every "
            f"{int(c.concurrency) / float(c.request_rate_per_s):.3g} s on average (the configured "
            f"{float(c.request_rate_per_s):g} requests/s over {int(c.concurrency)} sessions)."
        )

    def measure(self, workload: Workload, spec: Spec, codec: Any) -> LiveContext:
        """The sessions' steady-state live context (see the module docstring)."""
        return self.measure_stream(workload)

    def measure_stream(self, workload: Workload) -> LiveContext:
        """:meth:`measure` on any ``agent_sessions`` workload (one streamed pass)."""
        bt = self.block_tokens
        sids, wtok, wslot = [], [], []
        refs = 0
        distinct = 0
        for chunk in workload.chunks():
            assert chunk.session_ids is not None
            w_tokens = np.where(chunk.writes, chunk.tokens, 0)
            cs = np.concatenate([[0], np.cumsum(w_tokens)])
            cw = np.concatenate([[0], np.cumsum(chunk.writes)])
            lo, hi = chunk.offsets[:-1], chunk.offsets[1:]
            sids.append(chunk.session_ids)
            wtok.append(cs[hi] - cs[lo])
            wslot.append((cw[hi] - cw[lo]) * bt)
            refs += chunk.n_refs
            distinct += int(np.count_nonzero(chunk.writes))
        sid = np.concatenate(sids)
        n = sid.shape[0]
        prefix = int(workload.cfg.prefix_tokens)
        prefix_blocks = prefix // bt  # shared full blocks; the rest of the prefix fills each session's first block
        means, peaks = [], []
        for per_req, base in ((np.concatenate(wtok), prefix), (np.concatenate(wslot), prefix_blocks * bt)):
            live = self._live(sid, per_req, int(base))
            start, stop = self._steady(sid, int(workload.cfg.concurrency))
            window = live[start : stop + 1] if stop >= start else live
            means.append(float(window.mean()))
            peaks.append(int(window.max()))
        return LiveContext(
            what="steady-state live context of the active sessions",
            mean_tokens=means[0],
            peak_tokens=peaks[0],
            mean_slot_tokens=means[1],
            peak_slot_tokens=peaks[1],
            requests=n,
            references=refs,
            distinct_blocks=distinct + prefix_blocks,
        )

    @staticmethod
    def _live(sid: np.ndarray, per_req: np.ndarray, base: int) -> np.ndarray:
        """Live context after each request: base + all written so far - what ended sessions held."""
        n = sid.shape[0]
        last = np.zeros(int(sid.max()) + 1, dtype=np.int64)
        last[sid] = np.arange(n)  # the last assignment per session wins: its last request
        final = np.bincount(sid, weights=per_req).astype(np.int64)
        ended = np.zeros(n + 1, dtype=np.int64)
        np.add.at(ended, last + 1, final)  # a session stops counting after its last request
        dead = np.cumsum(ended)[:n]
        return base + np.cumsum(per_req) - dead

    @staticmethod
    def _steady(sid: np.ndarray, concurrency: int) -> tuple[int, int]:
        """Request indices bounding the steady state (sessions are numbered in start order).

        The first wave starts together, all with empty contexts; the sessions' ages are mixed once
        it has been replaced, so the window opens at the first turn of session ``2 x concurrency``
        (or of the last one of the first wave when there are not that many) and closes when the last
        session starts, after which the pool drains. An empty window means the whole run.
        """
        n_sessions = int(sid.max()) + 1
        first = np.full(n_sessions, sid.shape[0], dtype=np.int64)
        np.minimum.at(first, sid, np.arange(sid.shape[0]))
        c = min(concurrency, n_sessions)
        if n_sessions <= c:
            return 0, -1
        start = 2 * c - 1 if n_sessions > 2 * c else c - 1
        return int(first[start]), int(first[n_sessions - 1])
