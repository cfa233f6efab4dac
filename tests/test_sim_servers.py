"""The timed model's FIFO servers (links, engines, codec workers), worked by hand."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import simpy

from exo_sim.sim.servers import Server


def _ends(env: simpy.Environment, events: Mapping[str, simpy.Event]) -> dict[str, float]:
    ends: dict[str, float] = {}

    def ended(name: str) -> Callable[[simpy.Event], None]:
        return lambda _event: ends.__setitem__(name, env.now)

    for name, event in events.items():
        event.callbacks.append(ended(name))
    env.run()
    return ends


def test_jobs_take_free_servers_in_arrival_order() -> None:
    # two servers; jobs of 3, 1, 2 and 1 s all queued at 0: a and b start at once, c when b ends
    # (1 s), d when c or a ends first (a at 3, c at 1 + 2 = 3: the first free one, at 3)
    env = simpy.Environment()
    server = Server(env, 2, "link")
    jobs = {name: server.job(d, name) for name, d in (("a", 3.0), ("b", 1.0), ("c", 2.0), ("d", 1.0))}
    assert _ends(env, jobs) == {"b": 1.0, "a": 3.0, "c": 3.0, "d": 4.0}
    assert server.busy_s == 7.0 and server.jobs == 4 and server.in_use == 0


def test_a_claim_with_set_up_succeeds_after_it_and_holds_until_released() -> None:
    # one server busy with a 2 s job; a claim with 0.5 s of set-up gets it at 2 and succeeds at 2.5;
    # its holder releases it at 4, and a job queued behind it starts then (ends at 5)
    env = simpy.Environment()
    server = Server(env, 1, "engine")
    first = server.job(2.0, "first")
    claim = server.claim("held", setup_s=0.5)
    behind = server.job(1.0, "behind")
    seen: dict[str, float] = {}

    def holder(env: simpy.Environment):  # type: ignore[no-untyped-def]
        yield claim
        seen["claimed"] = env.now
        assert claim.started_s == 2.0
        yield env.timeout(1.5)
        server.release(claim)
        seen["released"] = env.now
        assert server.in_use == 1  # the job behind started at once, with no event in between

    env.process(holder(env))
    ends = _ends(env, {"first": first, "behind": behind})
    assert seen == {"claimed": 2.5, "released": 4.0}
    assert ends == {"first": 2.0, "behind": 5.0}
    assert server.busy_s == 2.0 + 2.0 + 1.0  # the claim held the server from 2 to 4, set-up included
