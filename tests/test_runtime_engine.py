"""The runtime as a serving engine: real prefills over KV that lives in the tiers.

Each request's cached prefix is loaded from the top tier (verified, decoded), the rest prefilled by
the model, and the new blocks' KV stored in the tier's codec; these tests pin that the stored KV is
the model's, that a corrupted block is never used, that TTFT's parts are measured, and the CLI ends
(Ctrl-C, a model too large for the host) in one sentence.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from exo_runtime.buffers import StagingPool
from exo_runtime.codecs import make_codec
from exo_runtime.engine.content import ComputeClock
from exo_runtime.engine.model import DecoderModel, kv_to_blocks
from exo_runtime.engine.serve import PrefixEngine
from exo_runtime.engine.tierio import TierIO
from exo_runtime.engine.tokens import request_token_ids
from exo_runtime.executor import Executor
from exo_runtime.run import run_runtime
from exo_runtime.stores import Store, StoreSettings, store_class
from exo_sim.architecture import architecture_of
from exo_sim.driver import Driver
from exo_sim.hierarchy import Hierarchy
from exo_sim.replay import run_replay
from exo_sim.results import TIER_DECISION_KEYS
from exo_sim.spec import build_spec
from tests.conftest import trace_path
from tests.runtime_overrides import ENGINE, REPO, SMALL, cli, compose_cfg, one_error_line, tiers

SESSIONS = [
    "workload=agent_sessions",
    "workload.sessions=12",
    "workload.concurrency=4",
    "workload.turns_max=8",
    "workload.turn_tokens_max=256",
    "workload.prefix_tokens=64",
]
"""Multi-turn sessions: chained prompts (prefix reuse) with output blocks, 76 requests."""


# ---------------------------------------------------------------------------- a hand-driven engine
@dataclass
class Rig:
    """The serving engine's parts over memory-only tiers, driven request by request by a test."""

    h: Hierarchy
    driver: Driver
    executor: Executor
    io: TierIO
    engine: PrefixEngine
    model: DecoderModel
    stores: list[Store]
    block_tokens: int

    def request(self, blocks: list[int]) -> tuple[int, torch.Tensor]:
        """Serve a prompt of full blocks; return the cached blocks it used and the model's input ids."""
        tokens = [self.block_tokens] * len(blocks)
        served = self.driver.request(blocks, tokens)
        self.executor.apply(self.h.moves)
        self.h.moves.clear()
        self.engine.serve(blocks, tokens, None, served)
        ids = request_token_ids(blocks, tokens, self.block_tokens, self.model.arch.vocab_size)
        return served.hit_blocks, ids

    def top_block(self, b: int) -> tuple[torch.Tensor, float]:
        """Block ``b``'s KV as the top tier holds it (decoded), and its copy's error bound."""
        c = self.executor.copies[b][self.h.top]
        codec = self.executor.codecs[self.h.top]
        assert codec is not None
        view = self.stores[self.h.top].host_view()
        assert view is not None
        out = torch.empty((1, self.executor.elements))
        codec.decode(view[c.slot : c.slot + 1], out)
        return out[0].view(self.model.block_shape(self.block_tokens)), c.bound

    def close(self) -> None:
        for st in self.stores:
            st.close()


@pytest.fixture
def rig() -> Iterator[Rig]:
    cfg = compose_cfg(*ENGINE, "hardware.tiers.2.medium=ram", *tiers(8, 16, 32), *SESSIONS)
    spec = build_spec(cfg)
    settings = StoreSettings(data_dir=Path("."), tag="exo-test-engine")
    stores = [store_class(t.medium)(t, settings) for t in spec.tiers]
    codecs = [make_codec(t.codec, spec.content.elements, cfg.codec) for t in spec.tiers]
    h = Hierarchy(spec, record_moves=True)
    ex = Executor(h, stores, codecs, None, StagingPool(1 << 22, False), 1 << 22, "checksum", {}, 1.0)  # type: ignore[arg-type]
    arch = architecture_of(cfg.payload)
    assert arch is not None
    model = DecoderModel(arch, seed=0)
    io = TierIO(ex)
    engine = PrefixEngine(model, spec, h, io, ComputeClock(model.device), chunk_tokens=4096)
    r = Rig(h, Driver(h, "prefix", spec.block_tokens), ex, io, engine, model, stores, spec.block_tokens)  # type: ignore[arg-type]
    yield r
    r.close()


def test_stored_kv_is_the_models_kv_for_the_chain(rig: Rig) -> None:
    chain = [0, 1, 2, 3, 4]
    hit, ids = rig.request(chain)
    assert hit == 0
    want = kv_to_blocks(rig.model.prefill(ids).kv, rig.block_tokens)
    for b in chain:
        got, bound = rig.top_block(b)  # int8 in the top tier: within its error bound of the model's KV
        assert 0 < float((got - want[b]).abs().max()) <= bound * (1 + 1e-6)
    # a longer prompt over the same prefix loads it (4 blocks: a fully cached block is recomputed last)
    hit, ids = rig.request([*chain, 5, 6])
    assert hit == 5
    want = kv_to_blocks(rig.model.prefill(ids).kv, rig.block_tokens)
    got, bound = rig.top_block(6)  # computed over the loaded (int8) prefix: close to the exact KV
    assert float((got - want[6]).abs().max()) < 0.05
    assert rig.executor.corruptions == [] and not rig.executor.pending
    rig.executor.verify()
    rig.h.verify()


def test_a_corrupted_top_tier_block_is_reported_recomputed_and_never_used(rig: Rig) -> None:
    chain = [10, 11, 12, 13]
    rig.request(chain)
    c = rig.executor.copies[11][rig.h.top]
    view = rig.stores[rig.h.top].host_view()
    assert view is not None
    view[c.slot, 7] ^= 0xFF  # one byte of block 11's stored KV
    hit, ids = rig.request([*chain, 14])
    assert hit == 4  # the core served the prefix from cache ...
    assert [(x.block, x.tier) for x in rig.executor.corruptions] == [(11, "shared")]
    assert rig.engine.recomputed_corrupt == 3  # ... but the engine used block 10 only and recomputed the rest
    want = kv_to_blocks(rig.model.prefill(ids).kv, rig.block_tokens)
    for b in (11, 12, 13, 14):  # rewritten with the recomputed KV: the corrupted bytes are gone
        got, bound = rig.top_block(b)
        assert float((got - want[b - 10]).abs().max()) < 0.05
    assert not rig.executor.copies[11][rig.h.top].stale
    rig.executor.verify()


@pytest.mark.parametrize("cached_blocks", [0, 5])
def test_engine_prefills_a_long_prompt_in_chunks_as_one_pass(rig: Rig, cached_blocks: int) -> None:
    """The engine's chunked prefill into the request's KV (chunk edges inside blocks; after a prefix
    written from its blocks or not) is the model's one-pass prefill of every token, within float32."""
    T = rig.block_tokens
    chain = list(range(100, 112))  # 12 blocks, 192 tokens
    ids = request_token_ids(chain, [T] * len(chain), T, rig.model.arch.vocab_size)
    whole = rig.model.prefill(ids).kv  # the reference: one forward pass
    cached = cached_blocks * T
    past = torch.stack(kv_to_blocks([(k[:, :cached], v[:, :cached]) for k, v in whole], T)) if cached else None
    rig.engine.chunk_tokens = 40
    kv, seconds = rig.engine._prefill(ids[cached:], past, cached, extra_tokens=2 * T)
    assert kv.capacity_tokens == len(ids) + 2 * T and kv.tokens == len(ids) and seconds > 0
    for (k, v), (kw, vw) in zip(kv.kv(), whole, strict=True):
        torch.testing.assert_close(k, kw, atol=1e-5, rtol=0)
        torch.testing.assert_close(v, vw, atol=1e-5, rtol=0)


def test_output_blocks_are_prefilled_after_the_prompt_in_the_same_kv(rig: Rig) -> None:
    """A prompt prefilled in chunks, then its output blocks after it: the outputs' stored KV is the
    one-pass model's over prompt and outputs (within the top tier's int8 bound)."""
    T = rig.block_tokens
    blocks, writes = [30, 31, 32, 33, 34], [False, False, False, True, True]
    tokens = [T] * len(blocks)
    rig.engine.chunk_tokens = 20
    served = rig.driver.request(blocks, tokens, writes)
    rig.executor.apply(rig.h.moves)
    rig.h.moves.clear()
    rig.engine.serve(blocks, tokens, writes, served)
    vocab = rig.model.arch.vocab_size
    ids = torch.cat((request_token_ids(blocks[:3], tokens[:3], T, vocab), request_token_ids(blocks[3:], tokens[3:], T, vocab)))
    want = kv_to_blocks(rig.model.prefill(ids).kv, T)
    for i, b in enumerate(blocks):
        got, bound = rig.top_block(b)
        assert 0 < float((got - want[i]).abs().max()) <= bound * (1 + 1e-6), b
    rig.executor.verify()


# ---------------------------------------------------------------------------- whole runs
def test_engine_runs_decide_as_the_replay_and_measure_ttft_parts(tmp_path: Path) -> None:
    cfg = compose_cfg(*ENGINE, *SESSIONS)
    result = run_runtime(cfg, tmp_path / "run")
    replay = run_replay(cfg)
    s, r = result.summary, replay.summary
    assert result.fault is None and s["complete"] is True
    for key in ("accesses", "requests", "new_blocks", "recomputed_blocks"):
        assert s[key] == r[key], key
    for got, want in zip(s["tiers"], r["tiers"], strict=True):
        assert {k: got[k] for k in TIER_DECISION_KEYS} == {k: want[k] for k in TIER_DECISION_KEYS}
    assert s["model"]["name"] == "tiny_llama_kv" and "random weights" in s["model"]["weights"]
    assert s["model"]["params"] == 19_204_352 and s["model"]["device"] == "cpu"
    req = result.requests
    computed = req[req["prefill_tokens"] > 0]
    assert len(computed) > 20
    assert bool((computed["compute_s"] > 0).all()) and bool((computed["load_s"] > 0).all())
    assert (req["ttft_s"] - req["queue_s"] - req["load_s"] - req["compute_s"]).abs().max() < 1e-9
    cached = req[req["cached_tokens"] > 0]
    assert len(cached) > 10 and bool((cached["bytes_loaded"] > 0).all())
    engine = s["measured"]["engine"]
    assert engine["compute_s"] > 0 and engine["tokens_per_s"] > 0
    assert engine["loads"][0]["tier"] == "shared" and engine["loads"][0]["bytes"] > 0
    assert s["runtime"]["integrity"]["corrupted"] == [] and s["runtime"]["integrity"]["reads_checked"] > 0
    for row in s["link_usage"]:  # measured only: nothing of the profile's links
        assert row["source"] == "measured" and "utilisation" not in row and "latency_us" not in row


def test_block_reuse_prefills_each_missed_block(tmp_path: Path) -> None:
    cfg = compose_cfg(*ENGINE, "workload.accesses=400")
    result = run_runtime(cfg, tmp_path / "run")
    s = result.summary
    assert result.fault is None and s["accesses"] == run_replay(cfg).summary["accesses"]
    assert s["measured"]["engine"]["compute_tokens"] == 16 * s["runtime"]["births"]
    assert s["runtime"]["integrity"]["reads_checked"] > 0


def test_full_integrity_is_refused_under_the_model(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="runtime.integrity"):
        run_runtime(compose_cfg(*ENGINE, "runtime.integrity=full"), tmp_path / "run")


def test_rag_chunks_are_embedded_by_the_encoder(tmp_path: Path) -> None:
    cfg = compose_cfg("runtime.compute=model", "workload.accesses=24", "workload.objects=12")
    s = run_runtime(cfg, tmp_path / "run").summary
    assert s["model"]["kind"] == "encoder" and s["measured"]["engine"]["compute_s"] > 0
    assert s["measured"]["engine"]["compute_tokens"] > 200 * s["runtime"]["births"]  # ~256 tokens a chunk


# ---------------------------------------------------------------------------- through exo-run
def test_exo_run_serves_mooncake_with_tiny_llama(tmp_path: Path) -> None:
    proc = cli(
        "exo_runtime.cli.run",
        *SMALL,
        *tiers(200, 400, 800),
        "runtime.compute=model",
        "payload=tiny_llama_kv",
        "block_tokens=512",
        "workload=mooncake",
        f"workload.path={trace_path('mooncake/conversation_trace.jsonl')}",
        "workload.max_requests=5",
        "runtime.codec_threads=2",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "random weights" in proc.stdout and "tiny_llama_kv" in proc.stdout
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["requests"] == 5 and s["config"]["hierarchy"]["reuse"] in ("auto", "prefix")
    assert s["model"]["params"] == 19_204_352
    req = pd.read_parquet(tmp_path / "requests.parquet")
    assert bool((req["compute_s"] > 0).all()) and bool((req["ttft_s"] > req["compute_s"]).all())
    assert int(req["cached_tokens"].sum()) >= 4 * 512  # every request after the first shares block 0


def test_llama3_8b_is_refused_on_this_host_in_one_sentence(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU: the 8B model may fit")
    proc = cli("exo_runtime.cli.run", "hardware=ci_cpu", *tiers(40, 80, 200), "payload=llama3_8b_kv",
               "output.progress=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "llama3_8b_kv" in line and "payload=tiny_llama_kv" in line


def test_ctrl_c_ends_in_one_line_saying_what_was_kept(tmp_path: Path) -> None:
    args = [*SMALL, *ENGINE, "workload.accesses=2000000", "workload.objects=100000", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "exo_runtime.cli.run", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    data = tmp_path / "data"
    deadline = time.monotonic() + 60
    while not data.exists() and time.monotonic() < deadline:  # made just before the tiers are allocated
        time.sleep(0.05)
    time.sleep(2.0)  # well into the request loop
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("error: interrupted at request ")
    assert "removed" in lines[0] and str(data) in lines[0]
    assert not data.exists() and not (tmp_path / "summary.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: the cuda/pinned tiers and the "
                    "layer-wise loader from pinned memory run only there")
def test_gpu_engine_on_cuda_and_pinned_tiers(tmp_path: Path) -> None:
    proc = cli("exo_runtime.cli.run", "hardware=ci_small", "runtime.compute=model", "payload=tiny_llama_kv",
               "block_tokens=256", *SESSIONS, "output.progress=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["model"]["device"].startswith("cuda") and s["model"]["dtype"] in ("bfloat16", "float16")
    assert {st["medium"] for st in s["runtime"]["stores"]} >= {"cuda", "pinned"}
    assert s["runtime"]["integrity"]["corrupted"] == [] and s["measured"]["engine"]["compute_s"] > 0
