"""``exo-calibrate`` on a rag_chunk payload: the encoder timed, fitted and written; ``exo-sim`` using it.

The end-to-end test calibrates this CPU with a small grid, simulates a tiny Zipf workload with the
calibrated profile, runs the same config through ``exo-run`` with the real encoder, and compares the
timed model's compute seconds with the runtime's measured ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from exo_runtime.engine.calibrate_compute import calibrate_encode, check_encode_grid, token_rows
from exo_runtime.engine.encoder import MiniLMEncoder, random_label
from exo_sim.errors import ConfigError
from tests.runtime_overrides import cli, one_error_line, tiers

RAG = OmegaConf.create({"name": "rag_chunk_minilm", "kind": "rag_chunk", "chunk_chars": 1024, "tokens_per_chunk": 256})


def test_rows_are_real_chunk_text_cut_to_exact_lengths() -> None:
    enc = MiniLMEncoder(seed=0, trained=False)
    for t in (3, 17, 256):
        rows = token_rows(enc, 3, t, 1024)
        assert [len(r) for r in rows] == [t, t, t]
        assert all(r[0] == enc.tokenizer.cls_id and r[-1] == enc.tokenizer.sep_id for r in rows)
    assert token_rows(enc, 2, 64, 1024)[0] != token_rows(enc, 2, 64, 1024)[1]  # two different chunks


def test_calibrate_encode_times_every_grid_point_and_says_which_weights() -> None:
    cal = calibrate_encode(RAG, seed=3, repeats=1, batch_chunks=[1, 2], chunk_tokens=[8, 16], trained=False)
    assert [(k, t) for k, t, _ in cal.points] == [(1, 8), (2, 8), (1, 16), (2, 16)]
    assert all(s > 0 for _, _, s in cal.points) and cal.weights == random_label(3)
    assert cal.cost.source == "calibrated" and cal.residuals.median >= 0
    text = "\n".join(cal.yaml_lines())
    assert "random weights (seed 3)" in text and "the cost does not depend on the weights" in text
    section = yaml.safe_load("\n".join(ln for ln in cal.yaml_lines() if not ln.startswith("#")))
    enc = section["compute"]["encode"]
    assert enc["payload"] == "rag_chunk_minilm" and enc["residual_max"] == pytest.approx(cal.residuals.max, abs=1e-6)


@pytest.mark.parametrize(
    ("batches", "tokens", "key"),
    [
        ([0, 4], [64, 256], "runtime.calibrate.encode_batch_chunks"),
        ([64], [64, 256], "runtime.calibrate.encode_batch_chunks"),
        ([], [64, 256], "runtime.calibrate.encode_batch_chunks"),
        ([1], [64, 512], "runtime.calibrate.encode_chunk_tokens"),
        ([1], [2, 64], "runtime.calibrate.encode_chunk_tokens"),
        ([1], [128, 128], "runtime.calibrate.encode_chunk_tokens"),
    ],
)
def test_bad_encode_grid_names_the_key(batches: list[int], tokens: list[int], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        check_encode_grid(batches, tokens)
    assert err.value.key == key


def test_bad_encode_grid_through_exo_calibrate_is_one_line_before_any_work(tmp_path: Path) -> None:
    proc = cli("exo_runtime.cli.calibrate", "hardware=ci_cpu", "payload=rag_chunk_minilm",
               "runtime.calibrate.encode_chunk_tokens=[64,512]", f"runtime.calibrate.out_dir={tmp_path / 'out'}",
               f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode != 0
    line = one_error_line(proc)
    assert "runtime.calibrate.encode_chunk_tokens" in line and "512" in line
    assert not (tmp_path / "out").exists()


def test_exo_calibrate_fits_the_encoder_and_exo_sim_uses_it(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    proc = cli(
        "exo_runtime.cli.calibrate",
        "hardware=ci_cpu",
        "payload=rag_chunk_minilm",
        "runtime.calibrate.name=rag",
        f"runtime.calibrate.out_dir={conf / 'hardware' / 'calibrated'}",
        "runtime.calibrate.block_sizes_bytes=[16384,65536]",
        "runtime.calibrate.bytes_per_size=1048576",
        "runtime.calibrate.repeats=3",
        "runtime.calibrate.codec_elements=65536",
        "runtime.calibrate.encode_batch_chunks=[1,2]",
        "runtime.calibrate.encode_chunk_tokens=[64,256]",
        f"hydra.run.dir={tmp_path / 'cal'}",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "encoder (all-MiniLM-L6-v2" in proc.stdout and "the cost does not depend on the weights" in proc.stdout
    assert "trained all-MiniLM-L6-v2" in proc.stdout or "random weights" in proc.stdout
    profile = yaml.safe_load((conf / "hardware" / "calibrated" / "rag.yaml").read_text())
    enc = profile["compute"]["encode"]
    assert enc["payload"] == "rag_chunk_minilm" and enc["b_s_per_token"] > 0
    assert 0 <= enc["residual_median"] <= enc["residual_max"]

    same = [
        "hardware=calibrated/rag",
        f"hydra.searchpath=[file://{conf}]",
        "payload=rag_chunk_minilm",
        *tiers(40, 80, 200),
        "workload=zipf",
        "workload.objects=12",
        "workload.accesses=24",
        "output.progress=false",
    ]
    sim = cli("exo_sim.cli.sim", *same, f"hydra.run.dir={tmp_path / 'sim'}")
    assert sim.returncode == 0, sim.stderr
    s = json.loads((tmp_path / "sim" / "summary.json").read_text())
    assert s["compute"]["cost"] == "encode" and s["compute"]["source"] == "calibrated"
    assert s["compute"]["encode_cost"]["b_s_per_token"] == pytest.approx(enc["b_s_per_token"])
    sim_compute_s = float(s["compute"]["compute_s"])
    assert sim_compute_s > 0

    run = cli(
        "exo_runtime.cli.run", *same, "runtime.compute=model", "runtime.staging_bytes=4194304",
        "runtime.codec_scratch_bytes=4194304", f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert run.returncode == 0, run.stderr
    r = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert r["model"]["kind"] == "encoder"
    # one decision core: the same blocks missed, so the same chunks were embedded
    assert r["accesses"] - sum(t["hits"] for t in r["tiers"]) == s["accesses"] - sum(t["hits"] for t in s["tiers"])
    run_compute_s = float(r["measured"]["engine"]["compute_s"])
    ratio = sim_compute_s / run_compute_s
    print(f"sim compute {sim_compute_s:.4f} s, runtime measured {run_compute_s:.4f} s, ratio {ratio:.3f}")
    assert 0.5 <= ratio <= 2.0
