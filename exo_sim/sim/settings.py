"""The timed model's settings (``cfg.sim``), checked and resolved before any work starts.

Every value a type cannot check is checked here and refused with a
:class:`~exo_sim.errors.ConfigError` naming its key: an unknown arrival process, an arrival rate that
is not positive, a closed loop with no agents, a negative think time, a prefill rate that is not
positive, an unknown demotion, multi-hop or overlap mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exo_sim.compute import PrefillCost
from exo_sim.encode_cost import BlockEncodeCost
from exo_sim.engine_costs import EngineCosts
from exo_sim.errors import ConfigError

DEMOTION_MODES = ("background", "sync")
"""``background``: a request does not wait for its victims' demotions; ``sync``: it does."""

MULTI_HOP_MODES = ("store_and_forward", "pipeline")
"""``store_and_forward``: one link after the other; ``pipeline``: all links at once."""

OVERLAP_MODES = ("none", "layerwise")
"""How a request's prefix load and its prefill share time: ``none`` one after the other;
``layerwise`` pipelined layer by layer."""

Locator = Callable[[str], "str | None"]


@dataclass(frozen=True)
class SimSettings:
    """``cfg.sim``, validated (see :class:`~exo_sim.config.SimConfig` for what each knob means)."""

    arrival: str
    arrival_rate_per_s: float | None
    agents: int
    think_time_s: float
    think_time_dist: str
    demotion_sync: bool
    pipeline: bool
    prefill_tokens_per_s: float
    compute_engines: int
    codec_workers: int
    write_requests: bool
    prefill_cost: PrefillCost = PrefillCost(0.0, 1e-4, 0.0, 0.0, "derived", "sim.prefill_tokens_per_s")
    layerwise: bool = False
    layers: int = 1
    encode: BlockEncodeCost | None = None
    """A ``rag_chunk`` payload's encoder cost per re-embedded block (``None``: the prefill cost applies)."""
    engine: EngineCosts = EngineCosts()
    """What the serving engine spends besides the prefill (``hardware.engine``)."""


def _fail(locate: Locator | None, key: str, problem: str) -> ConfigError:
    return ConfigError(key, problem, locate(key) if locate else None)


def sim_settings(sim: Any, locate: Locator | None = None) -> SimSettings:
    """Check ``cfg.sim`` and resolve it; the arrival process checks its own knobs.

    Raises:
        ConfigError: naming the first invalid key (``sim.<name>``).
    """
    from exo_sim.sim.arrivals import arrival_process

    def one_of(key: str, value: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise _fail(locate, f"sim.{key}", f"is {value!r}, not one of {', '.join(allowed)}")
        return value

    demotion = one_of("demotion", str(sim.demotion), DEMOTION_MODES)
    multi_hop = one_of("multi_hop", str(sim.multi_hop), MULTI_HOP_MODES)
    overlap = one_of("overlap", str(sim.overlap), OVERLAP_MODES)
    if not float(sim.prefill_tokens_per_s) > 0:
        raise _fail(locate, "sim.prefill_tokens_per_s", f"must be > 0, got {sim.prefill_tokens_per_s}")
    for key in ("compute_engines", "codec_workers"):
        if int(getattr(sim, key)) < 1:
            raise _fail(locate, f"sim.{key}", f"must be >= 1, got {getattr(sim, key)}")
    rate = sim.arrival_rate_per_s
    settings = SimSettings(
        arrival=str(sim.arrival),
        arrival_rate_per_s=None if rate is None else float(rate),
        agents=int(sim.agents),
        think_time_s=float(sim.think_time_s),
        think_time_dist=str(sim.think_time_dist),
        demotion_sync=demotion == "sync",
        pipeline=multi_hop == "pipeline",
        prefill_tokens_per_s=float(sim.prefill_tokens_per_s),
        compute_engines=int(sim.compute_engines),
        prefill_cost=PrefillCost(
            0.0, 1.0 / float(sim.prefill_tokens_per_s), 0.0, 0.0, "derived",
            f"sim.prefill_tokens_per_s = {float(sim.prefill_tokens_per_s):g} tokens/s (no architecture)",
        ),
        layerwise=overlap == "layerwise",
        codec_workers=int(sim.codec_workers),
        write_requests=bool(sim.write_requests),
    )
    arrival_process(settings, seed=0, locate=locate)  # checks the arrival knobs
    return settings


def with_compute(settings: SimSettings, cfg: Any, locate: Locator | None = None) -> SimSettings:
    """``settings`` with the compute cost and layer count of ``cfg``'s hardware and payload.

    The hardware profile's prefill cost (:func:`exo_sim.compute.resolve_prefill_cost`: fitted, or
    derived from the payload's architecture) when it gives one; otherwise a flat
    ``sim.prefill_tokens_per_s``. The engine's other costs: ``hardware.engine``
    (:func:`exo_sim.engine_costs.resolve_engine_costs`). A ``rag_chunk`` payload's misses are
    re-embedded by its encoder:
    the profile's encode cost (:func:`exo_sim.encode_cost.block_encode_cost`: fitted, or derived from
    the encoder's architecture) when it gives one; otherwise the flat rate again.
    """
    from dataclasses import replace

    from exo_sim.compute import resolve_prefill_cost
    from exo_sim.encode_cost import block_encode_cost
    from exo_sim.engine_costs import resolve_engine_costs

    cost = resolve_prefill_cost(cfg, locate)
    encode = block_encode_cost(cfg, int(cfg.block_tokens), locate)
    layers = int(getattr(cfg.payload, "layers", 0) or 1)
    engine = resolve_engine_costs(cfg, locate)
    return replace(
        settings, prefill_cost=cost or settings.prefill_cost, layers=max(1, layers), encode=encode, engine=engine
    )
