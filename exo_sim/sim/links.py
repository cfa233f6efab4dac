"""Links between tiers as SimPy resources, and the routes moves take over them.

A configured link joins two tiers. When it is ``duplex`` each direction is its own :class:`Link` (a
:class:`~exo_sim.sim.servers.Server` whose servers are the link's channels), with the reverse
direction's own figures when the profile gives them; otherwise both directions share one. A link
has ``channels`` channels: each carries one transfer at a time at the full ``bandwidth_gbps`` (the
speed ``exo-calibrate`` measures with one stream), so a link moves up to ``channels`` transfers at
once and transfers beyond that queue in arrival order. One transfer of ``n`` bytes holds a channel
for ``latency + blocks x block_s + n / bandwidth`` (``block_us``: a per-block cost, one I/O or copy
call per block, as ``exo-calibrate`` measures it).

A move from tier ``a`` to tier ``b`` crosses every link on the shortest path between them in the
graph of configured links (a promotion from NVMe to VRAM crosses RAM and shared memory on the way).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import simpy

from exo_sim.errors import ConfigError
from exo_sim.sim.servers import Job, Server
from exo_sim.spec import LinkSpec, Spec


class Link:
    """One SimPy resource of a link: a direction of a duplex link, or both directions of a simplex one.

    Attributes:
        index: position in :attr:`Fabric.links` (also the order in which a pipelined transfer takes
            several links at once, so that two such transfers can never deadlock).
        name: ``"vram->shared"`` (one direction) or ``"vram<->shared"`` (shared by both).
        src, dst: tier indices in the direction carried (as configured, for a simplex link).
        bandwidth_bytes_per_s, latency_s, channels: the link's figures, in SI units.
        bytes_moved, transfers: totals so far (counted when a transfer is queued).
        server: the SimPy resource of the link's channels.
    """

    def __init__(self, env: simpy.Environment, index: int, name: str, src: int, dst: int, spec: LinkSpec):
        self.index = index
        self.name = name
        self.src = src
        self.dst = dst
        self.duplex = spec.duplex
        self.bandwidth_bytes_per_s = spec.bandwidth_bytes_per_s
        self.latency_s = spec.latency_s
        self.block_s = spec.block_s
        self.channels = spec.channels
        self.server = Server(env, spec.channels, name)
        self.bytes_moved = 0
        self.transfers = 0
        self.host_busy_s = 0.0
        """Seconds of copies over this link done by the engine's own thread (``copies=host``)."""

    @property
    def busy_s(self) -> float:
        """Channel-seconds held by finished transfers so far (and the engine's own copies over it)."""
        return self.server.busy_s + self.host_busy_s

    def transfer(self, nbytes: int, blocks: int, label: str = "") -> Job:
        """Queue one transfer of ``nbytes`` (``blocks`` blocks) on a free channel; succeeds when it arrives."""
        self.bytes_moved += nbytes
        self.transfers += 1
        return self.server.job(self.duration_s(nbytes, blocks), label)

    def duration_s(self, nbytes: int, blocks: int = 0) -> float:
        """Seconds one transfer of ``nbytes`` (``blocks`` blocks) holds a channel."""
        return self.latency_s + blocks * self.block_s + nbytes / self.bandwidth_bytes_per_s

    def utilisation(self, makespan_s: float) -> float:
        """Bytes moved over what the link could move in ``makespan_s`` on all its channels (0..1)."""
        if makespan_s <= 0:
            return 0.0
        return self.bytes_moved / (self.bandwidth_bytes_per_s * self.channels * makespan_s)

    def __repr__(self) -> str:
        return f"Link({self.name})"


def held_together_s(hops: Iterable[tuple[Link, int, int]]) -> float:
    """Seconds one transfer takes that holds every link of a route at once, ``(link, bytes, blocks)`` each.

    The sum of the links' latencies, plus the slowest link's per-block cost and its bytes / bandwidth
    (a pipelined multi-hop transfer; an engine's own copy straight from source to destination).
    """
    hops = list(hops)
    return (
        sum(link.latency_s for link, _, _ in hops)
        + max(blocks * link.block_s for link, _, blocks in hops)
        + max(nbytes / link.bandwidth_bytes_per_s for link, nbytes, _ in hops)
    )


class Fabric:
    """Every :class:`Link` of a hierarchy and the route between any two tiers.

    Args:
        env: the SimPy environment the links live in.
        spec: the resolved hierarchy (links already checked by :func:`~exo_sim.spec.build_spec`).
        locate: names the origin of a config key in error messages.

    Raises:
        ConfigError: a pair of tiers joined by two links.
    """

    def __init__(self, env: simpy.Environment, spec: Spec, locate: Callable[[str], str | None] | None = None):
        names = [t.name for t in spec.tiers]
        self.links: list[Link] = []
        self._hop: dict[tuple[int, int], Link] = {}
        seen: dict[frozenset[int], int] = {}
        for i, ls in enumerate(spec.links):
            pair = frozenset((ls.src, ls.dst))
            if len(pair) == 1:
                raise ConfigError(
                    f"hardware.links[{i}].dst",
                    f"names tier {names[ls.dst]!r}, the link's own source; a link joins two tiers",
                    locate(f"hardware.links[{i}].dst") if locate else None,
                )
            if pair in seen:
                raise ConfigError(
                    f"hardware.links[{i}]",
                    f"joins {names[ls.src]} and {names[ls.dst]} again (hardware.links[{seen[pair]}] "
                    "already does); give one link per pair of tiers",
                    locate(f"hardware.links[{i}]") if locate else None,
                )
            seen[pair] = i
            a, b = names[ls.src], names[ls.dst]
            if ls.duplex:
                fwd = Link(env, len(self.links), f"{a}->{b}", ls.src, ls.dst, ls)
                self.links.append(fwd)
                back = Link(env, len(self.links), f"{b}->{a}", ls.dst, ls.src, ls.reverse())
                self.links.append(back)
            else:
                fwd = back = Link(env, len(self.links), f"{a}<->{b}", ls.src, ls.dst, ls)
                self.links.append(fwd)
            self._hop[(ls.src, ls.dst)] = fwd
            self._hop[(ls.dst, ls.src)] = back
        self._n = len(spec.tiers)
        self._routes: dict[tuple[int, int], tuple[Link, ...] | None] = {}

    def route(self, src: int, dst: int) -> tuple[Link, ...] | None:
        """The links a block crosses from tier ``src`` to tier ``dst``, in order; ``None`` if none joins them.

        The shortest path in hops; among equally short ones, the one through lower tier indices.
        """
        key = (src, dst)
        if key in self._routes:
            return self._routes[key]
        prev: dict[int, int] = {src: src}
        todo = deque([src])
        while todo:
            here = todo.popleft()
            for nxt in range(self._n):
                if nxt not in prev and (here, nxt) in self._hop:
                    prev[nxt] = here
                    todo.append(nxt)
        route: tuple[Link, ...] | None = None
        if dst in prev:
            hops: list[Link] = []
            at = dst
            while at != src:
                hops.append(self._hop[(prev[at], at)])
                at = prev[at]
            route = tuple(reversed(hops))
        self._routes[key] = route
        return route

    def check_routes(
        self, pairs: Iterable[tuple[int, int, str]], names: list[str], locate: Callable[[str], str | None] | None
    ) -> None:
        """Refuse the config when a pair of tiers the hierarchy moves blocks between has no route.

        Args:
            pairs: ``(src, dst, why)`` for every move the hierarchy can make (``why`` names the move).
            names: tier names, by index.
            locate: names the origin of a config key in error messages.

        Raises:
            ConfigError: on key ``hardware.links``, naming the two tiers.
        """
        for src, dst, why in pairs:
            if src != dst and self.route(src, dst) is None:
                raise ConfigError(
                    "hardware.links",
                    f"has no path from tier {names[src]} to tier {names[dst]}, which the timed model "
                    f"needs for {why}; add a link joining them (or the tiers between them)",
                    locate("hardware.links") if locate else None,
                )
