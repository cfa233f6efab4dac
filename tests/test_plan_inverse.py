"""Inverse queries of exo-plan (experiments.planning.inverse): the capacity a prefix hit ratio needs,
checked against single-tier replays at that capacity and one block less; the infinite-cache ceiling;
the constraint named when no hierarchy meets the TTFT target; bad input."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from exo_sim.cli.entry import CONF_DIR, setup
from exo_sim.errors import ConfigError
from exo_sim.mrc import engine_prefix_hits, request_arrays
from exo_sim.replay import run_replay
from exo_sim.spec import blocks_in, build_spec
from exo_sim.workloads import make_workload
from experiments.planning.inverse import Candidate, HitCurve, _binding, _bytes_for, inverse_settings
from tests.conftest import trace_path
from tests.test_mrc_prefix import BT, random_requests

setup()


def compose_cfg(name: str, *overrides: str) -> DictConfig:
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose(name, overrides=list(overrides))


def replay_ratio(path: Path, capacity: int) -> tuple[float, int]:
    """A single-tier LRU replay of the Mooncake conversation trace: (hits / read blocks, refused requests)."""
    s = run_replay(compose_cfg("config", "experiment=single_tier", "workload=mooncake", f"workload.path={path}",
                               f"capacity_blocks={capacity}", "policy=lru")).summary
    return s["tiers"][0]["hits"] / s["accesses"], int(s["requests_refused"])


def test_mooncake_capacity_reaches_the_target_and_one_block_less_does_not() -> None:
    path = trace_path("mooncake/conversation_trace.jsonl")
    cfg = compose_cfg("config", "experiment=single_tier", "workload=mooncake", f"workload.path={path}")
    spec = build_spec(cfg)
    req = request_arrays(make_workload(cfg.workload, spec.block_tokens))
    curve = HitCurve(cfg, req, spec.block_tokens, spec.tiers[0].codec, "prefix")
    targets = [0.15, 0.3, 0.36, 0.5]
    got = curve.capacities_for(targets)
    # the figure: 36.6 % at 512-token blocks is the ceiling; 50 % is unreachable
    assert round(curve.ceiling, 3) == 0.366
    assert got[0.5] is None
    assert not curve.engine  # one pass throughout: the boundary is exact
    for t in (0.15, 0.3, 0.36):
        c = got[t]
        assert c is not None and c > curve.min_blocks
        at, refused = replay_ratio(path, c)
        below, refused_below = replay_ratio(path, c - 1)
        assert refused == refused_below == 0
        assert at >= t > below, (t, c, at, below)


@pytest.mark.parametrize("seed", [1, 7, 23])
def test_random_chains_against_the_decision_core(seed: int) -> None:
    """Small random chains (duplicate copies included, finished by the core): each answer reaches its
    target in the decision core's own replay from an empty cache, and one block less does not."""
    cfg = compose_cfg("config", "experiment=single_tier", "workload=scan")
    req = random_requests(random.Random(seed))
    curve = HitCurve(cfg, req, BT, "fp16", "prefix")
    reads = int((~req.writes).sum())
    targets = [round(f * curve.ceiling, 3) for f in (0.3, 0.6, 0.95)]
    got = curve.capacities_for([t for t in targets if t > 0])
    for t, c in got.items():
        assert c is not None
        assert engine_prefix_hits(cfg, req, c, "fp16") / reads >= t
        lo, hi = curve.brackets[t]
        assert hi == c and lo < c
        if hi - lo == 1 and c > curve.min_blocks:  # a closed bracket: one block less fails
            assert engine_prefix_hits(cfg, req, c - 1, "fp16") / reads < t
    assert curve.capacities_for([min(0.999, curve.ceiling + 0.01)]) == {min(0.999, curve.ceiling + 0.01): None}


def test_bytes_for_a_share_over_the_watermark() -> None:
    # 4 usable blocks under a 0.8 watermark need 5 blocks (floor(0.8 x 5) = 4; floor(0.8 x 4) = 3)
    assert _bytes_for(4, 0.8, 100) == 500
    assert _bytes_for(8, 0.8, 100) == 1000
    assert _bytes_for(3, 1.0, 7) == 21
    # a file tier: each 5,000-byte block takes two 4,096-byte rows, and 10 blocks keep max(8, ceil(0.5))
    # = 8 copy-on-write spare slots: 18 slots x 8,192 bytes
    assert _bytes_for(10, 1.0, 5000, "file", 0.05) == 18 * 8192
    # and the spec reads those bytes back as the 10 blocks asked for (the timed model's tier, not one short)
    assert blocks_in("file", 18 * 8192, 5000, 0.05) == 10


def test_binding_constraint_is_named() -> None:
    target = 1.0
    refused = Candidate("as configured", {"vram": 1}, 1.0, ttft_p99_s=50.0, hit_ratio_tokens=0.5, requests_refused=9)
    text = _binding([refused], target, 0.99, 1, 1)
    assert "top tier binds" in text and "9 requests" in text
    at_ceiling = Candidate("ram for 90%", {"vram": 1}, 2.0, ttft_p99_s=3.0, hit_ratio_tokens=0.36, requests_refused=0)
    assert "reuse binds" in _binding([at_ceiling], target, 0.366, 1, 1)
    short = Candidate("ram for 50%", {"vram": 1}, 2.0, ttft_p99_s=3.0, hit_ratio_tokens=0.2, requests_refused=0)
    untimed = Candidate("nvme for 90%", {"vram": 1}, 3.0)
    text = _binding([short, untimed], target, 0.9, 1, 2)
    assert "TTFT target binds" in text and "1 of 2 candidates timed" in text


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("plan.hit_targets=[0.5,1.5]", "plan.hit_targets[1]"),
        ("plan.hit_targets=[0]", "plan.hit_targets[0]"),
        ("plan.hit_targets=[]", "plan.hit_targets"),
        ("+plan.cost_per_gb.tape=1", "plan.cost_per_gb.tape"),
        ("plan.cost_per_gb.ram=-1", "plan.cost_per_gb.ram"),
        ("plan.ttft_p99_target_s=0", "plan.ttft_p99_target_s"),
        ("plan.hierarchy_sims=0", "plan.hierarchy_sims"),
    ],
)
def test_bad_knobs_name_their_key(override: str, key: str) -> None:
    cfg = compose_cfg("plan", override)
    with pytest.raises(ConfigError) as err:
        inverse_settings(cfg, build_spec(cfg))
    assert err.value.key == key


def test_a_tier_without_a_price_is_refused() -> None:
    cfg = compose_cfg("plan")
    cfg.plan.cost_per_gb = OmegaConf.create({"cuda": 1.0})
    with pytest.raises(ConfigError, match="no price for tier"):
        inverse_settings(cfg, build_spec(cfg))


def test_cli_refuses_a_target_outside_0_1_in_one_sentence(tmp_path: Path) -> None:
    proc = subprocess.run(["exo-plan", "plan.hit_targets=[0.5,1.2]", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "plan.hit_targets[1]" in proc.stderr and "must be a prefix hit ratio in (0, 1), got 1.2" in proc.stderr
    assert not (tmp_path / "run" / "sweep").exists()
