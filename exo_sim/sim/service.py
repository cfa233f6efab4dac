"""A request's timeline on the serving engine and its transfers, driven by event callbacks.

The timed model (:mod:`exo_sim.sim.model`) turns each request's decisions into work; this module
carries that work out in simulated time. Nothing here is a SimPy process: each step is a callback on
the event that ends the step before, so a request costs one event per step that can wait on
something (the engine, a link channel, a codec engine) and one for the steps the engine does alone,
one after the other, while it holds the request (loading the cached prefix, the prefill, the store).
Their times are summed in the order the engine does them, as a chain of timeouts would (the first
token's time is that sum; the one event's own time, ``now + (sum - now)``, can differ from it in the
last bit)::

    Service (copies: dma)                          HostService (copies: host)
        claim the engine                               claim the engine
        schedule the request                           schedule, copy (promotions, demotions,
        start the promotions (Chain / Pipeline)          their codec work), load the prefix
          and the demotions                            prefill -> first token
        loads arrive -> load the prefix,               store the new KV; release
          prefill -> first token, store the new KV
        release; with demotion=sync, wait for the demotions

``Chain`` sends a request's transfers over one link after the other (store and forward);
``Pipeline`` holds all of them at once.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

import simpy

from exo_sim.sim.links import Link, held_together_s
from exo_sim.sim.servers import Job

if TYPE_CHECKING:
    from exo_sim.sim.model import TimedModel

Hops = list[tuple[Link, int, int]]
"""A request's transfers: (link, bytes, blocks) per link it crosses."""


class _OnEngine:
    """What a request on the engine keeps: its model, its id, who waits for it, its claim."""

    __slots__ = ("m", "rid", "waiter", "claim", "first_token")

    def __init__(self, model: TimedModel, rid: int, waiter: simpy.Event | None) -> None:
        self.m = model
        self.rid = rid
        self.waiter = waiter
        self.claim: Job | None = None
        self.first_token = 0.0

    def _first_token_at(self, t: float, store_s: float) -> None:
        """The first token comes at ``t``; the engine then stores the new KV and lets the request go."""
        self.first_token = t
        if store_s:
            t += store_s
        env = self.m.env
        if t > env.now:
            env.timeout(t - env.now).callbacks.append(self._released)
        else:
            self._released(None)

    def _released(self, _event: simpy.Event | None) -> None:
        if self.claim is not None:
            self.m.engine.release(self.claim)
        self._leave(self.first_token)

    def _leave(self, first_token_s: float) -> None:
        self.m.depart(self.rid, first_token_s)
        if self.waiter is not None:
            self.waiter.succeed()


class Service(_OnEngine):
    """One request on a compute engine that has copy engines (``copies: dma``).

    ``around`` is ``(schedule, kv load, kv store)`` seconds (``hardware.engine``): the engine
    schedules the request first, loads the cached prefix out of the top tier once its promotions
    have arrived (part of the load), and stores the new KV after the first token, still held.

    ``overlap=none``: the load (links, then codec decode) and then the prefill, one after the
    other. ``layerwise``: both start together and the prefill of layer i waits for layer i's KV,
    so the pair takes ``max(load, compute) + min(load, compute) / layers`` (the first layer's
    load, or the last layer's compute, cannot overlap). The engine is held throughout. The
    victims the request's blocks displaced are demoted once it holds the engine (a serving
    engine evicts when it schedules a request), after its own loads have started; with
    ``demotion=sync`` its TTFT also includes waiting for them. A request with no engine work
    only demotes.
    """

    __slots__ = (
        "up_hops", "up_codec", "compute_s", "down", "schedule_s", "kv_load_s", "store_s", "label", "start",
        "compute_end", "demoting", "released",
    )

    def __init__(
        self,
        model: TimedModel,
        rid: int,
        up_hops: Hops,
        up_codec: float,
        compute_s: float,
        down: tuple[Hops, float],
        around: tuple[float, float, float],
        label: str,
        waiter: simpy.Event | None,
    ) -> None:
        super().__init__(model, rid, waiter)
        self.up_hops = up_hops
        self.up_codec = up_codec
        self.compute_s = compute_s
        self.down = down
        self.schedule_s, self.kv_load_s, self.store_s = around
        self.label = label
        self.demoting = False
        self.released = False
        self.start = self.compute_end = 0.0
        if compute_s or up_hops or up_codec or self.schedule_s or self.kv_load_s or self.store_s:
            self.claim = model.engine.claim(label, self.schedule_s)  # scheduling: the engine's first step
            self.claim.callbacks.append(self._scheduled)
        else:
            self._demote()
            self.first_token = model.env.now
            self._released(None)

    def _scheduled(self, claim: Job) -> None:
        """The request got the engine (at ``claim.started_s``) and has been scheduled: start its loads."""
        m = self.m
        start = claim.started_s
        assert start is not None
        self.start = start
        m.queue_s[self.rid] = start - m.arrival_s[self.rid]
        self.compute_end = m.env.now + self.compute_s  # the layerwise prefill starts now
        loading = self.up_hops or self.up_codec
        if loading:
            m.chain(m, self.up_hops, self.up_codec, self.label, self._loaded)
        self._demote()  # after the loads have started; before a request with none may leave
        if not loading:
            self._loaded()

    def _loaded(self) -> None:
        """The promotions (and their codec work) are in: load the prefix, prefill, store."""
        m = self.m
        env = m.env
        now = env.now
        t = now + self.kv_load_s if self.kv_load_s else now
        load_s = t - self.start
        m.load_s[self.rid] = load_s
        compute_s = self.compute_s
        if m.layers and (self.up_hops or self.up_codec or self.kv_load_s) and compute_s:
            if self.compute_end > t:
                t = self.compute_end
            tail = min(load_s, compute_s) / m.layers
            if tail > 0:
                t += tail
        elif compute_s:
            t += compute_s
        self._first_token_at(t, self.store_s)

    def _released(self, _event: simpy.Event | None) -> None:
        """The engine is done with the request (its store included): free it; leave unless demoting."""
        if self.claim is not None:
            self.m.engine.release(self.claim)
        self.released = True
        if not self.demoting:
            self._leave(self.first_token)

    def _demote(self) -> None:
        """Start the request's demotions; a ``sync`` request leaves only once they are done."""
        hops, codec_s = self.down
        if not (hops or codec_s):
            return
        m = self.m
        if m.demotion_sync:
            self.demoting = True
            m.chain(m, hops, codec_s, self.label, self._demoted)
        else:
            m.chain(m, hops, codec_s, self.label, m.background_done)

    def _demoted(self) -> None:
        self.demoting = False
        if self.released:
            self._leave(self.m.env.now)


class HostService(_OnEngine):
    """One request on an engine that copies blocks itself (``hardware.engine.copies=host``).

    Held throughout, one step after the other: schedule, copy the request's promotions and
    demotions (with their codec work), load the cached prefix, prefill — the first token — then
    store the new KV. There is nothing to overlap with: the same thread does every step.
    """

    __slots__ = ("compute_s", "store_s")

    def __init__(
        self,
        model: TimedModel,
        rid: int,
        copy_s: float,
        compute_s: float,
        around: tuple[float, float, float],
        label: str,
        waiter: simpy.Event | None,
    ) -> None:
        super().__init__(model, rid, waiter)
        self.compute_s = compute_s
        schedule_s, kv_load_s, self.store_s = around
        self.claim = model.engine.claim(label, schedule_s + copy_s + kv_load_s)  # its steps before the prefill
        self.claim.callbacks.append(self._loaded)

    def _loaded(self, claim: Job) -> None:
        m = self.m
        now = m.env.now
        assert claim.started_s is not None
        m.queue_s[self.rid] = claim.started_s - m.arrival_s[self.rid]
        m.load_s[self.rid] = now - claim.started_s
        self._first_token_at(now + self.compute_s if self.compute_s else now, self.store_s)


class Chain:
    """Store-and-forward: one hop after the other, then the codec work, then ``done``.

    Each hop is one job on its link; the next starts from the job's own callback.
    """

    __slots__ = ("model", "hops", "i", "codec_s", "label", "done")

    def __init__(
        self, model: TimedModel, hops: Hops, codec_s: float, label: str, done: Callable[[], object]
    ) -> None:
        self.model = model
        self.hops = hops
        self.i = 0
        self.codec_s = codec_s
        self.label = label
        self.done = done
        self._next(None)

    def _next(self, _event: simpy.Event | None) -> None:
        if self.i < len(self.hops):
            link, nbytes, blocks = self.hops[self.i]
            self.i += 1
            link.transfer(nbytes, blocks, self.label).callbacks.append(self._next)
        elif self.codec_s:
            seconds, self.codec_s = self.codec_s, 0.0
            self.model.codec.job(seconds, self.label).callbacks.append(self._next)
        else:
            self.done()


class Pipeline:
    """Pipelined: claim every link of the chain, hold them all, release them, then the codec work.

    Links are claimed in link order (so two chains never deadlock) and held for the sum of their
    latencies plus the slowest link's bytes / bandwidth.
    """

    def __init__(
        self, model: TimedModel, hops: Hops, codec_s: float, label: str, done: Callable[[], object]
    ) -> None:
        if len(hops) < 2:
            Chain(model, hops, codec_s, label, done)
            return
        model.env.process(self._run(model, hops, codec_s, label, done))

    @staticmethod
    def _run(
        model: TimedModel, hops: Hops, codec_s: float, label: str, done: Callable[[], object]
    ) -> Generator[simpy.Event, Any, None]:
        env = model.env
        claims = []
        for link, _, _ in sorted(hops, key=lambda kv: kv[0].index):
            claim = link.server.claim(label)
            yield claim
            claims.append((link, claim))
        yield env.timeout(held_together_s(hops))
        for link, nbytes, _ in hops:
            link.bytes_moved += nbytes
            link.transfers += 1
        for link, claim in claims:
            link.server.release(claim)
        if codec_s:
            yield model.codec.job(codec_s, label)
        done()
