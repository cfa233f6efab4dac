"""exo-plan end to end through its console script: a small phase on ci_small, and bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from experiments.planning.units import seconds

# a small phase on the small profile, two policies x two codec mixes, few sessions: a quick sweep
SMALL = [
    "hardware=ci_small",
    "phase=256k",
    "phase.name=64k",
    "phase.target_tokens=65536",
    "plan.policies=[lru,fifo]",
    "plan.codecs=[seed_mix,int4]",
    "plan.min_sessions=12",
    "plan.sweep_jobs=2",
]

HEADINGS = [
    "## Summary",
    "## What was simulated",
    "## Capacity",
    "## Policies and codec mixes",
    "### Recommended configuration and why",
    "## Top-tier miss-ratio curve and the next phase",
    "## Bottleneck",
    "## What operators get wrong",
    "### Bytes per token, exactly",
    "### What each lower tier buys",
    "### Does a hit pay off? Load versus recompute",
    "### Start-up: pinning the shared tier",
    "### Headroom under bursts",
    "## Audit of the seed workstation's claims",
    "## How this report was made",
]
FIGURES = ["capacity.png", "sweep.png", "mrc.png", "tiers.png", "occupancy.png", "bottleneck.png", "audit.png"]


def exo_plan(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["exo-plan", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def small_plan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    out = tmp_path_factory.mktemp("plan") / "run"
    proc = exo_plan(*SMALL, f"hydra.run.dir={out}", cwd=out.parent)
    return out, proc


def test_small_phase_end_to_end(small_plan):
    out, proc = small_plan
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    positions = [md.index(h + "\n") for h in HEADINGS]
    assert positions == sorted(positions), "sections out of order"
    for h in HEADINGS:
        assert f">{h.lstrip('# ')}</h" in html.replace("&#x27;", "'")
    for name in FIGURES:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000, name
        assert f"]({name})" in md and f'src="{name}"' in html
    # capacities derived from bytes: ci_small's 256 MiB VRAM holds 15 INT8 blocks of Llama-3-8B
    assert "| vram | cuda | 0.25 GiB | 1,024 | 2,048 | 2,048 | **3,840** | 7,168 |" in md
    plan = json.loads((out / "plan.json").read_text())
    assert plan["target_tokens"] == 65536 and plan["simulated"]
    rec = plan["recommended"]
    assert (rec["policy"], rec["codec"]) in {(p, c) for p in ("lru", "fifo") for c in ("seed_mix", "int4")}
    assert f"**Recommended: policy={rec['policy']}, codec={rec['codec']}**" in md
    # the sweep ran through exo-sim -m: four jobs, each with the plan's sized workload and the profile's tiers
    sweep = sorted(p for p in (out / "sweep").iterdir() if p.is_dir())
    assert len(sweep) == 4 and (out / "sweep" / "sweep.parquet").is_file()
    job = json.loads((sweep[0] / "summary.json").read_text())
    assert job["source"] == "sim" and job["hardware"] == "ci_small"
    sized = int(md.split("`workload.concurrency=")[1].split("`")[0])
    assert job["config"]["workload"]["concurrency"] == sized
    assert [t["capacity_bytes"] for t in job["tiers"]] == [268435456, 1073741824, 2147483648, 8589934592]
    # the measured live context is stated against the target
    assert "Measured steady-state live context of the active sessions: mean" in md
    # ranked by TTFT: the recommendation cites TTFT p99 / p50, the prefix hit ratio per tier and refusals
    assert "latency p99" not in md and "p99 latency" not in md and "request latency" not in md
    assert f"TTFT (time to first token) p99 {seconds(rec['ttft_p99_s'])}, p50 {seconds(rec['ttft_p50_s'])}" in md
    assert "| TTFT p50 | TTFT p99 | prefix hit ratio | by tier (vram / shared / ram / nvme) |" in md
    by_tier = rec["hit_ratio_tokens_by_tier"]
    assert list(by_tier) == ["vram", "shared", "ram", "nvme"]
    assert sum(by_tier.values()) == pytest.approx(rec["hit_ratio_tokens"])
    if rec["requests_refused"]:
        assert f"**{rec['requests_refused']:,} of" in md and "were refused** in that run" in md and "a server could not run them" in md
    # the assumptions state the prefill cost's coefficients and source, the engines and the overlap
    cost = plan["prefill_cost"]
    assert cost["source"] == "derived" and plan["compute_engines"] == 1 and plan["overlap"] == "none"
    assert f"a = {cost['a_s']:.4g} s, b = {cost['b_s_per_token']:.4g} s/token" in md
    assert "derived from the payload's architecture x the device's peak x an assumed efficiency" in md
    assert "on 1 compute engine(s)" in md and "overlap `none`" in md
    # load versus recompute with the real prefill cost, per tier below the top, stating n
    assert [b["tier"] for b in plan["break_even"]] == ["shared", "ram", "nvme"]
    assert f"it is taken as {plan['break_even'][0]['new_tokens']:,} tokens" in md


def test_unknown_phase_is_one_line_with_the_choices(tmp_path):
    proc = exo_plan("phase=3m", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown phase '3m'; the choices are: 10m, 1m, 256k, 2m, 512k, 5m."


def test_unreachable_trace_is_one_sentence(tmp_path):
    proc = exo_plan("workload=mooncake", "workload.path=/nonexistent/trace.jsonl",
                    f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["error: trace /nonexistent/trace.jsonl: no such file (set workload.path)."]
    assert not (tmp_path / "run" / "report.md").exists()


def test_bad_plan_knob_is_refused_before_any_work(tmp_path):
    proc = exo_plan("plan.codecs=[fp16,int3]", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2
    assert "config key `plan.codecs[1]` (command-line override `plan.codecs=[fp16,int3]`) is 'int3'" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "run" / "sweep").exists()


def test_a_target_no_profile_holds_is_reported_not_simulated(tmp_path):
    out = tmp_path / "run"
    proc = exo_plan("hardware=ci_small", "phase.target_tokens=100000000000000", f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (out / "report.md").read_text()
    assert "nothing was simulated" in md
    # h100_node in int4 (9,437,184 B blocks of Llama-3-8B): its VRAM holds the KV budget only, with the
    # default payload's int4 weights 80 GiB x 0.9 = 77,309,411,328 B - 5,727,854,592 B weights
    # - 341,049,344 B workspace = 71,240,507,392 B // 9,437,184 = 7,548 blocks, not the 80 GiB's 9,102:
    # 853,414,656 - (9,102 - 7,548) x 256 = 853,016,832 tokens
    assert "No profile in conf/hardware/ holds it either: the largest, h100_node, holds 853,016,832 tokens" in md
    assert "The whole hierarchy does **not** hold the target" in md
    assert json.loads((out / "plan.json").read_text())["simulated"] is False
    assert not (out / "sweep").exists()
    assert (out / "capacity.png").is_file() and (out / "audit.png").is_file()
