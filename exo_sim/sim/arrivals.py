"""Arrival processes: when each request of the workload reaches the decision core.

Each process is a small class registered under the name ``sim.arrival`` takes:

* ``trace`` — open loop, the workload's own timestamps (shifted so the first request arrives at 0 s;
  a timestamp earlier than the one before it is held back to it, and counted);
* ``poisson`` — open loop, exponential gaps of mean ``1 / arrival_rate_per_s`` (seeded);
* ``fixed_rate`` — open loop, request ``k`` at ``k / arrival_rate_per_s``;
* ``closed_loop`` — ``agents`` agents; each takes the workload's next request, waits until it is
  served, thinks (``think_time_s``, ``fixed`` or ``exponential``), and takes the next one.

Whatever the process, requests reach the decision core in workload order (an agent takes the next
request when it issues it, not before), so the model's decisions equal the replay's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from exo_sim.errors import ConfigError
from exo_sim.registry import Registry
from exo_sim.sim.settings import Locator, SimSettings
from exo_sim.workloads.base import RequestChunk

if TYPE_CHECKING:
    from exo_sim.sim.model import TimedModel

ARRIVALS: Registry[ArrivalProcess] = Registry("arrival process", "name")
register = ARRIVALS.register
"""Class decorator: register an :class:`ArrivalProcess` under its ``name``."""


def arrival_names() -> list[str]:
    """Names ``sim.arrival`` accepts."""
    return ARRIVALS.names()


def _fail(locate: Locator | None, key: str, problem: str) -> ConfigError:
    return ConfigError(key, problem, locate(key) if locate else None)


class ArrivalProcess(ABC):
    """How requests arrive; checks its own knobs when built.

    Args:
        settings: the timed model's settings.
        seed: seeds any randomness (the config's ``seed``).
        locate: names the origin of a config key in error messages.

    Raises:
        ConfigError: a knob of this process is invalid, or a knob it ignores is set.
    """

    name: ClassVar[str] = ""
    uses_rate: ClassVar[bool] = False

    def __init__(self, settings: SimSettings, seed: int, locate: Locator | None = None) -> None:
        self.settings = settings
        self.seed = seed
        rate = settings.arrival_rate_per_s
        if self.uses_rate:
            if rate is None:
                raise _fail(locate, "sim.arrival_rate_per_s", f"must be set (> 0) for sim.arrival={self.name}")
            if not rate > 0:
                raise _fail(locate, "sim.arrival_rate_per_s", f"must be > 0 for sim.arrival={self.name}, got {rate}")
        elif rate is not None:
            raise _fail(
                locate,
                "sim.arrival_rate_per_s",
                f"is {rate} but sim.arrival={self.name} does not use a rate; leave it unset "
                "or choose sim.arrival=poisson or fixed_rate",
            )

    @abstractmethod
    def start(self, model: TimedModel) -> None:
        """Start the SimPy processes that feed ``model``'s requests to its decision core."""

    def notes(self) -> list[str]:
        """Anything the results should say about the arrivals."""
        return []

    def describe(self) -> dict[str, object]:
        """The process and its parameters, for the summary."""
        return {"process": self.name}


class OpenLoop(ArrivalProcess):
    """Requests arrive at times of their own, whatever the system's state."""

    @abstractmethod
    def arrival_times(self, chunk: RequestChunk) -> np.ndarray:
        """Arrival time (s) of each request of ``chunk``, non-decreasing and after the previous chunk's."""

    def start(self, model: TimedModel) -> None:
        """A feed hands each request to the model at its arrival time."""
        model.open_loop(self.arrival_times)


@register
class TraceArrivals(OpenLoop):
    """The workload's own timestamps, the first one at 0 s."""

    name = "trace"

    def __init__(self, settings: SimSettings, seed: int, locate: Locator | None = None) -> None:
        super().__init__(settings, seed, locate)
        self._origin: float | None = None
        self._last = 0.0
        self.held_back = 0

    def arrival_times(self, chunk: RequestChunk) -> np.ndarray:
        """Timestamps shifted to start at 0; an out-of-order one is held back to its predecessor."""
        t = np.asarray(chunk.arrival_s, dtype=np.float64)
        if t.shape[0] == 0:
            return t
        if self._origin is None:
            self._origin = float(t[0])
        t = t - self._origin
        held = np.maximum.accumulate(np.concatenate(([self._last], t)))[1:]
        self.held_back += int(np.count_nonzero(held > t))
        self._last = float(held[-1])
        return held

    def notes(self) -> list[str]:
        """Say how many timestamps were out of order."""
        if not self.held_back:
            return []
        return [f"{self.held_back} requests had a timestamp earlier than the request before them; "
                "they arrived with it instead"]


@register
class PoissonArrivals(OpenLoop):
    """Exponential gaps of mean ``1 / arrival_rate_per_s`` (seeded)."""

    name = "poisson"
    uses_rate = True

    def __init__(self, settings: SimSettings, seed: int, locate: Locator | None = None) -> None:
        super().__init__(settings, seed, locate)
        self._rng = np.random.default_rng(seed)
        self._last = 0.0

    def arrival_times(self, chunk: RequestChunk) -> np.ndarray:
        """Cumulative exponential gaps."""
        rate = self.settings.arrival_rate_per_s
        assert rate is not None
        t = self._last + np.cumsum(self._rng.exponential(1.0 / rate, chunk.n_requests))
        if t.shape[0]:
            self._last = float(t[-1])
        return t

    def describe(self) -> dict[str, object]:
        """Process and rate."""
        return {"process": self.name, "rate_per_s": self.settings.arrival_rate_per_s, "seed": self.seed}


@register
class FixedRateArrivals(OpenLoop):
    """Request ``k`` (from 0) at ``k / arrival_rate_per_s``."""

    name = "fixed_rate"
    uses_rate = True

    def __init__(self, settings: SimSettings, seed: int, locate: Locator | None = None) -> None:
        super().__init__(settings, seed, locate)
        self._next = 0

    def arrival_times(self, chunk: RequestChunk) -> np.ndarray:
        """Evenly spaced times."""
        rate = self.settings.arrival_rate_per_s
        assert rate is not None
        k = np.arange(self._next, self._next + chunk.n_requests, dtype=np.float64)
        self._next += chunk.n_requests
        return k / rate

    def describe(self) -> dict[str, object]:
        """Process and rate."""
        return {"process": self.name, "rate_per_s": self.settings.arrival_rate_per_s}


ThinkFn = Callable[[np.random.Generator, float], float]

THINK_TIMES: dict[str, ThinkFn] = {
    "fixed": lambda rng, mean: mean,
    "exponential": lambda rng, mean: float(rng.exponential(mean)) if mean > 0 else 0.0,
}
"""Think-time distributions by name, each drawing one think time (s) of the given mean."""


@register
class ClosedLoop(ArrivalProcess):
    """``agents`` agents, each issuing its next request when its last one is served plus a think time."""

    name = "closed_loop"

    def __init__(self, settings: SimSettings, seed: int, locate: Locator | None = None) -> None:
        super().__init__(settings, seed, locate)
        if settings.agents < 1:
            raise _fail(locate, "sim.agents", f"must be >= 1 for sim.arrival=closed_loop, got {settings.agents}")
        if not settings.think_time_s >= 0:
            raise _fail(locate, "sim.think_time_s", f"must be >= 0, got {settings.think_time_s}")
        if settings.think_time_dist not in THINK_TIMES:
            raise _fail(
                locate,
                "sim.think_time_dist",
                f"is {settings.think_time_dist!r}, not one of {', '.join(THINK_TIMES)}",
            )
        self._draw = THINK_TIMES[settings.think_time_dist]
        self._rng = np.random.default_rng(seed)

    def think_s(self) -> float:
        """One think time (s)."""
        return self._draw(self._rng, self.settings.think_time_s)

    def start(self, model: TimedModel) -> None:
        """One SimPy process per agent, all taking requests from one stream."""
        for agent in range(self.settings.agents):
            model.env.process(model.agent(agent, self.think_s))

    def describe(self) -> dict[str, object]:
        """Process, agents and think time."""
        s = self.settings
        return {"process": self.name, "agents": s.agents, "think_time_s": s.think_time_s,
                "think_time_dist": s.think_time_dist, "seed": self.seed}


def arrival_process(settings: SimSettings, seed: int, locate: Locator | None = None) -> ArrivalProcess:
    """Build the arrival process ``settings.arrival`` names.

    Raises:
        ConfigError: an unknown process (``sim.arrival``) or one of its knobs is invalid.
    """
    if settings.arrival not in ARRIVALS:
        raise _fail(locate, "sim.arrival", f"is {settings.arrival!r}, not one of {', '.join(ARRIVALS.names())}")
    return ARRIVALS.get(settings.arrival)(settings, seed, locate)
