"""exo-plan end to end through its console script: a small phase on ci_small, and bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from experiments.planning.figures import png_title
from experiments.planning.units import seconds

README = Path(__file__).resolve().parents[1] / "README.md"

# a small phase on the small profile, two policies x two codec mixes, few sessions: a quick sweep
SMALL = [
    "hardware=ci_small",
    "phase=256k",
    "phase.name=64k",
    "phase.target_tokens=65536",
    "plan.policies=[lru,fifo]",
    "plan.codecs=[seed_mix,int4]",
    "plan.accuracy_budget.max_kv_relative_error=0.2",  # admits int4 (measured ~0.1): the sweep's choice stays TTFT's
    "plan.min_sessions=12",
    "plan.sweep_jobs=2",
]

HEADINGS = [
    "## Summary",
    "## What was simulated",
    "## Capacity",
    "## Policies and codec mixes",
    "### Recommended configuration and why",
    "## Codec accuracy",
    "## Top-tier hit-ratio curve and the next phase",
    "## Bottleneck",
    "## What operators get wrong",
    "### Bytes per token, exactly",
    "### What each lower tier buys",
    "### Does a hit pay off? Load versus recompute",
    "### Start-up: pinning the shared tier",
    "### Headroom under bursts",
    "## How this report was made",
]
AUDIT = "## Audit of the seed workstation's claims"
FIGURES = ["capacity.png", "sweep.png", "mrc.png", "tiers.png", "occupancy.png", "bottleneck.png"]


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
    # the seed audit is for the seed profile only: not on ci_small, not even in the summary
    assert AUDIT not in md and "Seed workstation claims" not in md and not (out / "audit.png").exists()
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
    assert (out / "capacity.png").is_file() and not (out / "audit.png").exists()  # ci_small: no seed audit
    assert AUDIT not in md


def summary_bullets(md: str) -> list[str]:
    """The summary's bullets, in order."""
    section = md.split("## Summary\n", 1)[1].split("\n## ", 1)[0]
    return [line[2:] for line in section.splitlines() if line.startswith("- ")]


def test_summary_answers_each_question_first(small_plan):
    out, proc = small_plan
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "report.md").read_text()
    plan = json.loads((out / "plan.json").read_text())
    rec = plan["recommended"]
    lines = summary_bullets(md)
    # one line per question, in order: target, recommendation, bottleneck, next phase
    assert [x.split("**")[1] for x in lines[:4]] == [
        "Target", f"Recommended: policy={rec['policy']}, codec={rec['codec']}", "Bottleneck", "Next phase"]
    # ci_small holds (15 + 63 + 64 + 128) blocks x 256 = 69,120 tokens under seed_mix (test_plan_audit's
    # hand count), its VRAM 15 x 256 = 3,840: the 65,536 target fits the hierarchy, not the top tier
    assert lines[0] == ("**Target** 65,536 tokens (phase 64k): reachable in the whole hierarchy, not the top tier "
                        "(vram holds 3,840): 69,120 tokens at once under seed_mix.")
    assert lines[2] == f"**Bottleneck**: {plan['bottleneck']}"
    assert lines[3].startswith("**Next phase** 512k (524,288 tokens) needs a top tier of ")
    assert " 0 s" not in md.split("## What was simulated")[0]
    # a light load: no overload note, in the report or in plan.json
    assert "Notes: none." in md and plan["notes"] == [] and "warning:" not in proc.stderr


def test_figure_titles_say_what_they_plot(small_plan):
    out, _proc = small_plan
    mrc = png_title(out / "mrc.png")
    assert mrc.startswith("top-tier hit-ratio curve (LRU): ") and "miss" not in mrc
    assert png_title(out / "sweep.png").startswith("timed sweep: policy x codec mix")
    assert png_title(out / "capacity.png") == (
        "llama3_8b_int4_kv on ci_small: capacity per tier and codec (256-token blocks)")


def documented_schema() -> dict[str, tuple[str, str]]:
    """``key -> (type, when)`` from the README's plan.json table."""
    section = README.read_text().split("### `plan.json` (exo-plan)\n", 1)[1].split("\n#", 1)[0]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| `")]
    return {cells[0].strip().strip("`"): (cells[1].strip(), cells[2].strip()) for cells in rows}


JSON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
              "array": list, "null": type(None)}


def check_plan_json(plan: dict, schema: dict[str, tuple[str, str]]) -> None:
    """Every documented key that must be there is, with its documented type."""
    for key, (typ, when) in schema.items():
        head, _, sub = key.partition(".")
        where = plan.get(head, {}) if sub else plan
        name = sub or head
        if when == "optional" or (when == "simulated" and not plan["simulated"]):
            if name not in where:
                continue
        assert name in where, f"plan.json lacks documented key {key}"
        value = where[name]
        allowed = tuple(JSON_TYPES[t.strip()] for t in typ.split(" or "))
        assert isinstance(value, allowed), f"{key}: {value!r} is not {typ}"
        if typ in ("integer", "number"):
            assert not isinstance(value, bool), key
    assert all(isinstance(n, str) for n in plan["notes"])


def test_plan_json_matches_its_documented_schema(small_plan, tmp_path):
    out, _proc = small_plan
    schema = documented_schema()
    assert {"target_tokens", "notes", "recommended.ttft_p99_s", "next_phase"} <= set(schema)
    assert schema["skip_reason"] == ("string or null", "always")
    check_plan_json(json.loads((out / "plan.json").read_text()), schema)
    # the checker fails a wrong type and a missing key
    bad = json.loads((out / "plan.json").read_text())
    bad["target_tokens"] = "65536"
    with pytest.raises(AssertionError, match="target_tokens"):
        check_plan_json(bad, schema)
    del bad["recommended"]["codec"]
    bad["target_tokens"] = 65536
    with pytest.raises(AssertionError, match="recommended.codec"):
        check_plan_json(bad, schema)


def test_an_overloaded_sweep_warns(tmp_path):
    # requests at 1,000/s against one prefill engine; the seed policies and mix, expanded per tier
    out = tmp_path / "run"
    proc = exo_plan(*SMALL[:4], "plan.policies=[seed]", "plan.codecs=[seed_mix]", "plan.min_sessions=12",
                    "plan.sweep_jobs=1", "workload.request_rate_per_s=1000", f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    md = (out / "report.md").read_text()
    plan = json.loads((out / "plan.json").read_text())
    warnings = [line.removeprefix("warning: ") for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings and warnings == plan["notes"]
    assert warnings[0].startswith("Overloaded: in the recommended run, ")
    summary = md.split("## What was simulated")[0]
    assert "Notes:\n" in summary and all(f"- **Warning**: {w}" in summary for w in warnings)
    # the overloaded resource and its demand are the bottleneck table's (demand > 1)
    name, demand = warnings[0].split("run, ")[1].split(": offered ")[0], warnings[0].split("offered ")[1].split("x")[0]
    assert float(demand) > 1 and f"| {name} |" in md and f"| {demand} |" in md
    # seed = LRU/LRU/FIFO/FIFO and seed_mix = INT8/INT8/FP16/FP32 (conf/policy/seed.yaml, conf/codec/seed_mix.yaml)
    assert ("**Recommended: policy=seed, codec=seed_mix** - policy seed (vram lru, shared lru, ram fifo, nvme fifo); "
            "codec seed_mix (vram int8, shared int8, ram fp16, nvme fp32); TTFT") in summary


def test_the_seed_audit_is_shown_for_the_seed_profile_only(tmp_path):
    # a target nothing holds: no sweep, so this is quick; the seed profile gets the audit section
    out = tmp_path / "run"
    proc = exo_plan("hardware=seed_workstation", "phase.target_tokens=100000000000000", f"hydra.run.dir={out}",
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    md = (out / "report.md").read_text()
    assert AUDIT in md and (out / "audit.png").is_file()
    assert png_title(out / "audit.png") == (
        "seed_workstation under seed_mix: claimed vs computed KV-cache token capacity")
    # the audit is in its own section, not in the summary; RAG chunks carry no token claim there
    summary = md.split("## What was simulated")[0]
    assert "claimed" not in summary
    audit = md.split(AUDIT)[1].split("\n## ")[0]
    claims_table = audit.split("| payload | codec |")[0]  # the tokens table comes before the savings table
    assert "| llama3_8b_kv | nvme | fp32 |" in claims_table and "| rag_chunk_minilm |" not in claims_table
    assert "| rag_chunk_minilm | int8 |" in audit  # its codec savings are still reported
    assert "19073" not in md and "19,073" not in md


def test_tensor_parallel_tokens_are_per_rank_and_a_free_ttft_is_said_so(tmp_path):
    from experiments.planning.report import _ttft

    assert _ttft(0.0) == "< 1 us, all hits" and _ttft(2.5e-4) == "250 us"
    out = tmp_path / "run"
    proc = exo_plan("hardware=ci_small", "payload.tensor_parallel=2", "phase.target_tokens=100000000000000",
                    f"hydra.run.dir={out}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    target = summary_bullets((out / "report.md").read_text())[0]
    assert target.startswith("**Target** 100,000,000,000,000 tokens (phase 256k): not reachable on ci_small in any codec "
                             "(at most ") and target.endswith(" tokens per rank); on no profile in conf/hardware/.")
    assert "**Recommendation**: none, nothing was simulated." in (out / "report.md").read_text()
