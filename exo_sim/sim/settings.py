"""The timed model's settings (``cfg.sim``), checked and resolved before any work starts.

Every value a type cannot check is checked here and refused with a
:class:`~exo_sim.errors.ConfigError` naming its key: an unknown arrival process, an arrival rate that
is not positive, a closed loop with no agents, a negative think time, a prefill rate that is not
positive, an unknown demotion or multi-hop mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exo_sim.errors import ConfigError

DEMOTION_MODES = ("background", "sync")
"""``background``: a request does not wait for its victims' demotions; ``sync``: it does."""

MULTI_HOP_MODES = ("store_and_forward", "pipeline")
"""``store_and_forward``: one link after the other; ``pipeline``: all links at once."""

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
    prefill_slots: int
    codec_workers: int
    write_requests: bool


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
    if not float(sim.prefill_tokens_per_s) > 0:
        raise _fail(locate, "sim.prefill_tokens_per_s", f"must be > 0, got {sim.prefill_tokens_per_s}")
    for key in ("prefill_slots", "codec_workers"):
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
        prefill_slots=int(sim.prefill_slots),
        codec_workers=int(sim.codec_workers),
        write_requests=bool(sim.write_requests),
    )
    arrival_process(settings, seed=0, locate=locate)  # checks the arrival knobs
    return settings
