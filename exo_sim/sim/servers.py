"""A SimPy resource of identical servers taking timed jobs in arrival order.

Links (their channels), prefill engines and codec engines are all one :class:`Server`: ``capacity``
servers, a FIFO queue, and jobs that each hold one server. It is a ``BaseResource`` subclass with
the usual *put* hook: a *put* is a :class:`Job`; :meth:`Server.release` gives a claim's server back at once.

A job of known duration (a transfer, a recompute) is one event that **succeeds when the job ends**:
when a server is free it starts at once and is scheduled ``duration_s`` ahead, so a transfer costs
one event instead of the usual request / timeout / release triple (the timed model makes a few per
request, and there are hundreds of thousands of requests). A job with ``duration_s=None`` is a
*claim*: it succeeds when it gets a server (or a set-up time after) and holds it until
:meth:`Server.release` — the classic request/release pair, used when one transfer holds several
links at once (a pipelined chain) and for a request on the serving engine.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from simpy import Environment
from simpy.core import NORMAL
from simpy.events import PENDING, Event
from simpy.resources.base import BaseResource


class Job(Event):
    """One job on a :class:`Server`: it succeeds when it ends (or, for a claim, when it starts).

    Attributes:
        duration_s: seconds it holds a server; ``None`` for a claim.
        label: a name for the server's log.
        setup_s: a claim succeeds this long after it gets its server (work its holder does first).
        started_s: when it got a server (``None`` while queued).
    """

    def __init__(self, server: Server, duration_s: float | None, label: str = "", setup_s: float = 0.0) -> None:
        env = self.env = server._env
        self.server = server
        self.duration_s = duration_s
        self.label = label
        self.setup_s = setup_s
        if server.in_use < server._capacity and not server.put_queue:  # start now (inlined _start)
            server.in_use += 1
            server.jobs += 1
            self.started_s: float | None = env.now
            self._ok = True
            self._value = None
            if duration_s is None:
                self.callbacks: list[Any] = []
                env.schedule(self, NORMAL, setup_s)
            else:
                self.callbacks = [server._done]
                env.schedule(self, NORMAL, duration_s)
        else:
            self.started_s = None
            self.callbacks = []
            self._value = PENDING
            server.put_queue.append(self)


class Server(BaseResource):
    """``capacity`` identical servers; jobs wait in one FIFO queue.

    Args:
        env: the SimPy environment.
        capacity: number of servers (>= 1).
        name: for the log.

    Attributes:
        busy_s: server-seconds held by finished jobs and released claims.
        jobs: jobs started so far.
        log: when a list, every finished job appends ``(start_s, end_s, name, label)``.

    Raises:
        ValueError: ``capacity`` is below 1.
    """

    PutQueue = deque  # type: ignore[assignment]

    def __init__(self, env: Environment, capacity: int, name: str = "") -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        super().__init__(env, capacity)
        self.name = name
        self.in_use = 0
        self.busy_s = 0.0
        self.jobs = 0
        self.log: list[tuple[float, float, str, str]] | None = None

    def job(self, duration_s: float, label: str = "") -> Job:
        """Queue a job holding one server for ``duration_s``; the event succeeds when it ends."""
        return Job(self, duration_s, label)

    def claim(self, label: str = "", setup_s: float = 0.0) -> Job:
        """Queue a claim of a server, held until :meth:`release`.

        The event succeeds ``setup_s`` seconds after the claim gets its server (``started_s``): the
        holder's first step, timed with no event of its own.
        """
        return Job(self, None, label, setup_s)

    def release(self, claim: Job) -> None:  # type: ignore[override]
        """Give back the server ``claim`` holds, now (no event: the next queued job starts at once)."""
        self._free(claim)

    def _trigger_put(self, get_event: Any) -> None:
        queue = self.put_queue
        while queue and self.in_use < self._capacity:
            self._start(queue.popleft())  # type: ignore[attr-defined]

    def _start(self, job: Job) -> None:
        env = self._env
        self.in_use += 1
        self.jobs += 1
        job.started_s = env.now
        job._ok = True
        job._value = None
        if job.duration_s is None:
            env.schedule(job, NORMAL, job.setup_s)
        else:
            job.callbacks.insert(0, self._done)  # free the server before anyone waiting resumes
            env.schedule(job, NORMAL, job.duration_s)

    def _done(self, job: Job) -> None:  # a timed job's first callback: it ended now
        self.busy_s += job.duration_s  # type: ignore[operator]
        if self.log is not None:
            self.log.append((job.started_s, self._env.now, self.name, job.label))  # type: ignore[arg-type]
        self.in_use -= 1
        if self.put_queue:
            self._trigger_put(None)

    def _free(self, claim: Job) -> None:
        if claim.started_s is None:
            raise RuntimeError("a claim was released before it held a server")
        self.busy_s += self._env.now - claim.started_s
        if self.log is not None:
            self.log.append((claim.started_s, self._env.now, self.name, claim.label))
        self.in_use -= 1
        self._trigger_put(None)

    def _do_put(self, event: Any) -> bool:  # the queue is served by _trigger_put itself
        raise NotImplementedError

    def _do_get(self, event: Any) -> bool:
        raise NotImplementedError
