"""Trace readers: Mooncake JSONL, libCacheSim CSV, Azure CSV — real traces, small files, bad input,
constant memory, and the CLI's refusal (exit 2, one line, no summary)."""

from __future__ import annotations

import json
import math
import subprocess
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from exo_sim.blocksplit import FRESH_ID_BASE
from exo_sim.errors import ConfigError, TraceError
from exo_sim.replay import run_replay
from exo_sim.workloads import make_workload
from exo_sim.workloads.azure import AzureWorkload, AzureWorkloadConfig
from exo_sim.workloads.base import Workload
from exo_sim.workloads.libcachesim_csv import LibCacheSimCsvWorkload, LibCacheSimCsvWorkloadConfig
from exo_sim.workloads.mooncake import CHUNK_LINES, MooncakeWorkload, MooncakeWorkloadConfig
from tests.conftest import trace_path


def mooncake(path: Path, block_tokens: int = 512, **kw: Any) -> MooncakeWorkload:
    w = MooncakeWorkload(MooncakeWorkloadConfig(path=str(path), **kw), block_tokens)
    w.validate()
    return w


def rows(ts: int, inp: int, out: int, ids: list[Any]) -> dict[str, Any]:
    return {"timestamp": ts, "input_length": inp, "output_length": out, "hash_ids": ids}


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def collect(w: Workload) -> dict[str, np.ndarray]:
    chunks = list(w.chunks())
    offsets = [np.zeros(1, dtype=np.int64)]
    base = 0
    for c in chunks:
        offsets.append(c.offsets[1:] + base)
        base += c.n_refs
    return {
        "arrival_s": np.concatenate([c.arrival_s for c in chunks]),
        "offsets": np.concatenate(offsets),
        "blocks": np.concatenate([c.blocks for c in chunks]),
        "writes": np.concatenate([c.writes for c in chunks]),
        "tokens": np.concatenate([c.tokens for c in chunks]),
    }


# ------------------------------------------------------------------ Mooncake
SMALL = [
    rows(0, 1024, 10, [0, 1]),
    rows(1500, 1100, 600, [0, 1, 2]),
    rows(1500, 300, 1, [7]),
]


def test_mooncake_small_file_at_the_trace_block_size(tmp_path: Path) -> None:
    got = collect(mooncake(write_jsonl(tmp_path / "t.jsonl", SMALL)))
    assert got["arrival_s"].tolist() == [0.0, 1.5, 1.5]
    assert got["offsets"].tolist() == [0, 2, 5, 6]
    assert got["blocks"].tolist() == [0, 1, 0, 1, 2, 7]
    assert got["tokens"].tolist() == [512, 512, 512, 512, 76, 300]  # 1100 = 2 x 512 + 76
    assert not got["writes"].any()


def test_mooncake_split_to_256(tmp_path: Path) -> None:
    got = collect(mooncake(write_jsonl(tmp_path / "t.jsonl", SMALL), 256))
    assert got["offsets"].tolist() == [0, 4, 9, 11]
    assert got["blocks"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 4, 14, 15]
    assert got["tokens"].tolist() == [256] * 8 + [76, 256, 44]


def test_mooncake_token_and_time_scale(tmp_path: Path) -> None:
    # token_scale 16: a hash id is 32 tokens; 1024 -> 64 = 2 x 32, 1100 -> 69 = 2 x 32 + 5, 300 -> 19
    got = collect(mooncake(write_jsonl(tmp_path / "t.jsonl", SMALL), 32, token_scale=16, time_scale=0.1))
    assert got["arrival_s"].tolist() == pytest.approx([0.0, 0.15, 0.15])
    assert got["offsets"].tolist() == [0, 2, 5, 6]
    assert got["blocks"].tolist() == [0, 1, 0, 1, 2, 7]  # the same prefix structure as at full size
    assert got["tokens"].tolist() == [32, 32, 32, 32, 5, 19]
    split = collect(mooncake(write_jsonl(tmp_path / "t.jsonl", SMALL), 16, token_scale=16))
    assert split["tokens"].tolist() == [16] * 8 + [5, 16, 3]


@pytest.mark.parametrize(
    ("block", "kw", "key"),
    [
        (32, {"token_scale": 3}, "workload.token_scale"),
        (32, {"token_scale": 0}, "workload.token_scale"),
        (64, {"token_scale": 16}, "block_tokens"),
        (32, {"token_scale": 16, "time_scale": 0.0}, "workload.time_scale"),
    ],
)
def test_mooncake_refuses_bad_scales(tmp_path: Path, block: int, kw: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        mooncake(write_jsonl(tmp_path / "t.jsonl", SMALL), block, **kw)
    assert err.value.key == key


def test_mooncake_output_blocks_are_fresh_writes(tmp_path: Path) -> None:
    got = collect(mooncake(write_jsonl(tmp_path / "t.jsonl", SMALL), 256, write_output=True))
    # outputs: 10 -> 1 block, 600 -> 3 blocks, 1 -> 1 block, after each request's reads
    assert got["offsets"].tolist() == [0, 5, 13, 16]
    w = got["writes"]
    assert np.flatnonzero(w).tolist() == [4, 10, 11, 12, 15]
    out = got["blocks"][w]
    assert out.tolist() == [FRESH_ID_BASE + i for i in range(5)]
    assert got["tokens"][w].tolist() == [10, 256, 256, 88, 1]
    assert set(got["blocks"][~w].tolist()) == {0, 1, 2, 3, 4, 14, 15}


def test_mooncake_max_requests_and_chunk_boundaries(tmp_path: Path) -> None:
    n = CHUNK_LINES * 2 + 5
    path = write_jsonl(tmp_path / "t.jsonl", [rows(i, 600, 1, [i, i + 1]) for i in range(n)])
    got = collect(mooncake(path))
    assert got["offsets"].shape[0] == n + 1
    assert got["blocks"].tolist() == [x for i in range(n) for x in (i, i + 1)]
    assert np.allclose(got["arrival_s"], np.arange(n) / 1000.0)
    assert collect(mooncake(path, max_requests=7))["offsets"].tolist() == list(range(0, 16, 2))


BAD_LINES: list[tuple[str, Any, str]] = [
    ("invalid json", '{"timestamp": 5, "input_length": ', "is not valid JSON"),
    ("not an object", "[1, 2, 3]", "not an object"),
    ("missing field", {"timestamp": 5, "input_length": 1, "hash_ids": [1]}, "no field 'output_length'"),
    ("negative length", rows(5, -3, 1, []), "input_length -3 is not an integer >= 0"),
    ("float length", rows(5, 2.5, 1, [1]), "input_length 2.5 is not an integer"),
    ("count mismatch", rows(5, 1100, 1, [1, 2]), "has 2 hash_ids but input_length 1100 needs ceil(1100 / 512) = 3"),
    ("hash_ids not a list", rows(5, 10, 1, "abc"), "hash_ids is a str, not a list"),
    ("non-integer hash id", rows(5, 1024, 1, [1, "x"]), "hash id 'x' is not an integer"),
    ("float hash id", rows(5, 1024, 1, [1, 2.0]), "hash id 2.0 is not an integer"),
    ("negative hash id", rows(5, 1024, 1, [1, -4]), "hash id -4 is outside"),
    ("huge hash id", rows(5, 1024, 1, [1, 2**70]), f"hash id {2**70} is outside"),
    ("bool hash id", rows(5, 1024, 1, [True, False]), "hash id True is not an integer"),
    ("NaN timestamp", '{"timestamp": NaN, "input_length": 1, "output_length": 1, "hash_ids": [1]}', "timestamp nan"),
    ("time goes back", rows(1, 10, 1, [1]), "timestamp 1 ms is earlier than the previous request's 5 ms"),
    ("string timestamp", rows("soon", 10, 1, [1]), "timestamp 'soon' is not a number"),
    ("blank line", "   ", "is empty"),
]


@pytest.mark.parametrize("name,bad,message", BAD_LINES, ids=[b[0] for b in BAD_LINES])
@pytest.mark.parametrize("at", [2, CHUNK_LINES + 3])
def test_mooncake_refuses_a_malformed_line_with_its_number(
    tmp_path: Path, name: str, bad: Any, message: str, at: int
) -> None:
    good = [rows(5, 600, 1, [i, i + 1]) for i in range(at + 3)]
    good[at - 1] = bad
    path = write_jsonl(tmp_path / "bad.jsonl", good)
    with pytest.raises(TraceError) as err:
        collect(mooncake(path))
    text = str(err.value)
    assert f"trace {path} line {at}:" in text
    assert message in text


def test_mooncake_refuses_missing_and_empty_files_and_bad_block_sizes(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        mooncake(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(TraceError, match="empty"):
        mooncake(tmp_path / "empty.jsonl")
    path = write_jsonl(tmp_path / "t.jsonl", SMALL)
    with pytest.raises(ConfigError, match="block_tokens.*384.*does not divide"):
        mooncake(path, 384)
    with pytest.raises(ConfigError, match="workload.max_requests"):
        mooncake(path, max_requests=0)


@pytest.mark.parametrize(
    "name,requests,refs,distinct",
    [("conversation_trace.jsonl", 12_031, 288_500, 182_790), ("synthetic_trace.jsonl", 3_993, 121_877, 43_924)],
)
def test_mooncake_real_traces(name: str, requests: int, refs: int, distinct: int) -> None:
    """Counts as published in ../shared/traces/SOURCES.md; tokens sum to the input lengths."""
    path = trace_path(f"mooncake/{name}")
    got = collect(mooncake(path))
    assert got["offsets"].shape[0] - 1 == requests
    assert got["blocks"].shape[0] == refs
    assert np.unique(got["blocks"]).shape[0] == distinct
    with open(path) as f:
        first = json.loads(f.readline())
        inputs = [first["input_length"]] + [json.loads(line)["input_length"] for line in f]
    assert int(got["tokens"].sum()) == sum(inputs)
    per_request = np.add.reduceat(got["tokens"], got["offsets"][:-1])
    assert per_request.tolist() == inputs


# ------------------------------------------------------------------ libCacheSim CSV
def csv_workload(path: Path, **kw: Any) -> LibCacheSimCsvWorkload:
    w = LibCacheSimCsvWorkload(LibCacheSimCsvWorkloadConfig(path=str(path), **kw), 256)
    w.validate()
    return w


def test_csv_small_file_by_name_and_by_number(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("version,time,op,size,lbn\n1,100,r,512,7\n1,100,r,512,9\n1,103,w,4096,7\n")
    for field in ("lbn", "5"):
        got = collect(csv_workload(path, obj_id_field=field))
        assert got["blocks"].tolist() == [7, 9, 7]
        assert got["offsets"].tolist() == [0, 1, 2, 3]
        assert got["arrival_s"].tolist() == [0.0, 0.0, 3.0]
        assert got["tokens"].tolist() == [256] * 3
    got = collect(csv_workload(path, time_unit_s=1e-3))
    assert got["arrival_s"].tolist() == [0.0, 0.0, 0.003]
    got = collect(csv_workload(path, time_field=None))
    assert got["arrival_s"].tolist() == [0.0, 0.0, 0.0]


def test_csv_without_header_and_with_another_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("10\t5\n11\t6\n12\t5\n")
    got = collect(csv_workload(path, has_header=False, delimiter="\t", obj_id_field="2", time_field="1"))
    assert got["blocks"].tolist() == [5, 6, 5]
    assert got["arrival_s"].tolist() == [0.0, 1.0, 2.0]


def test_csv_string_ids_keep_the_reuse_structure(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("key\nalpha\nbeta\nalpha\ngamma\nbeta\n")
    got = collect(csv_workload(path, obj_id_field="key", obj_id_is_num=False, time_field=None))
    b = got["blocks"].tolist()
    assert b[0] == b[2] and b[1] == b[4] and len({b[0], b[1], b[3]}) == 3
    assert all(x >= 0 for x in b)
    assert collect(csv_workload(path, obj_id_field="key", obj_id_is_num=False, time_field=None))["blocks"].tolist() == b


BAD_CSV: list[tuple[str, str, dict[str, Any], int | None, str]] = [
    ("no such column", "a,b\n1,2\n", {"obj_id_field": "lbn", "time_field": None}, 1, "column 'lbn' (workload.obj_id_field) does not exist; the header has a, b"),
    ("column number too big", "a,b\n1,2\n", {"obj_id_field": "3", "time_field": None}, 1, "has 2 columns, so column 3"),
    ("non-integer id", "t,id\n1,5\n2,x7\n", {"obj_id_field": "id", "time_field": "t"}, 3, "id 'x7' is not an integer"),
    ("too many fields", "t,id\n1,5\n2,6,9\n", {"obj_id_field": "id", "time_field": "t"}, 3, "has 3 fields where the first line has 2"),
    ("too few fields", "t,id\n1,5\n2\n", {"obj_id_field": "id", "time_field": "t"}, 3, "has 1 fields where the first line has 2"),
    ("empty value", "t,id\n1,5\n2,\n", {"obj_id_field": "id", "time_field": "t"}, 3, "has no value in column id"),
    ("blank line", "t,id\n1,5\n\n3,6\n", {"obj_id_field": "id", "time_field": "t"}, 3, "has no value in column"),
    ("negative id", "t,id\n1,5\n2,-6\n", {"obj_id_field": "id", "time_field": "t"}, 3, "object id -6 is negative"),
    ("time goes back", "t,id\n5,5\n2,6\n", {"obj_id_field": "id", "time_field": "t"}, 3, "time 2 is earlier than the previous row's 5"),
    ("bad time", "t,id\n5,5\nnoon,6\n", {"obj_id_field": "id", "time_field": "t"}, 3, "t 'noon' is not a number"),
    ("name without header", "1,5\n", {"obj_id_field": "id", "time_field": None, "has_header": False}, None, "has no header"),
]


@pytest.mark.parametrize("name,text,kw,line,message", BAD_CSV, ids=[b[0] for b in BAD_CSV])
def test_csv_refuses_malformed_input(
    tmp_path: Path, name: str, text: str, kw: dict[str, Any], line: int | None, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as err:
        collect(csv_workload(path, **kw))
    at = f" line {line}:" if line is not None else ":"
    assert f"trace {path}{at}" in str(err.value)
    assert message in str(err.value)


def test_csv_error_line_is_exact_deep_in_a_large_file(tmp_path: Path) -> None:
    n = 300_000  # several pyarrow blocks
    lines = [f"{i},{i % 977}" for i in range(n)]
    lines[250_000] = "250000,oops"
    path = tmp_path / "big.csv"
    path.write_text("t,id\n" + "\n".join(lines) + "\n")
    with pytest.raises(TraceError, match=rf"line {250_000 + 2}: id 'oops' is not an integer"):
        collect(csv_workload(path, obj_id_field="id", time_field="t"))


def test_csv_real_trace_matches_its_oracle_general_twin(make_cfg: Callable[..., Any]) -> None:
    """The same cloudPhysics trace read from CSV and from oracleGeneral gives the same replay."""
    csv_path = trace_path("libcachesim/cloudPhysicsIO.csv")
    bin_path = trace_path("libcachesim/cloudPhysicsIO.oracleGeneral.bin")
    got = collect(csv_workload(csv_path))
    assert got["blocks"].shape[0] == 113_872
    assert np.unique(got["blocks"]).shape[0] == 48_974
    for cap in (100, 3000):
        hits = []
        for wl in (f"workload=libcachesim_csv workload.path={csv_path}", f"workload=oracle_general workload.path={bin_path}"):
            cfg = make_cfg("experiment=single_tier", f"capacity_blocks={cap}", "policy=fifo", *wl.split())
            hits.append(run_replay(cfg).summary["tiers"][0]["hits"])
        assert hits[0] == hits[1]


# ------------------------------------------------------------------ Azure
def azure(path: Path, block_tokens: int = 256, **kw: Any) -> AzureWorkload:
    w = AzureWorkload(AzureWorkloadConfig(path=str(path), **kw), block_tokens)
    w.validate()
    return w


AZ_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def test_azure_small_file(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        AZ_HEAD
        + "2023-11-16 18:17:03.9799600,600,10\n2023-11-16 18:17:04.0319600,256,300\n2023-11-16 18:17:05.9799600,0,1\n"
    )
    got = collect(azure(path))
    assert np.allclose(got["arrival_s"], [0.0, 0.052, 2.0])
    assert got["offsets"].tolist() == [0, 3, 4, 4]
    assert got["blocks"].tolist() == [0, 1, 2, 3]  # every block fresh: no reuse
    assert got["tokens"].tolist() == [256, 256, 88, 256]
    got = collect(azure(path, write_output=True))
    assert got["offsets"].tolist() == [0, 4, 7, 8]
    assert got["writes"].tolist() == [False] * 3 + [True] + [False, True, True, True]
    assert got["tokens"].tolist() == [256, 256, 88, 10, 256, 256, 44, 1]
    assert np.unique(got["blocks"]).shape[0] == 8
    w = azure(path)
    assert w.describe()["reuse"] == "none"
    assert any("no block hashes" in n for n in w.notes())


@pytest.mark.parametrize(
    "body,line,message",
    [
        ("2023-11-16 18:17:03.97,5,1\nyesterday,5,1\n", 3, "TIMESTAMP 'yesterday' is not a date and time"),
        ("2023-11-16 18:17:03.97,5,1\n2023-11-16 18:17:04.00,-5,1\n", 3, "ContextTokens -5 is negative"),
        ("2023-11-16 18:17:03.97,5,1\n2023-11-16 18:17:02.00,5,1\n", 3, "is earlier than the previous row's"),
        ("2023-11-16 18:17:03.97,5,1\n2023-11-16 18:17:04.00,5\n", 3, "has 2 fields"),
        ("2023-11-16 18:17:03.97,5,1\n2023-11-16 18:17:04.00,5.5,1\n", 3, "ContextTokens '5.5' is not an integer"),
    ],
)
def test_azure_refuses_malformed_rows(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = tmp_path / "a.csv"
    path.write_text(AZ_HEAD + body)
    with pytest.raises(TraceError) as err:
        collect(azure(path))
    assert f"trace {path} line {line}:" in str(err.value)
    assert message in str(err.value)


def test_azure_refuses_a_missing_column(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("TIMESTAMP,Context,GeneratedTokens\n2023-11-16 18:17:03.97,5,1\n")
    with pytest.raises(TraceError, match="column 'ContextTokens' .workload.context_column. does not exist"):
        azure(path)


@pytest.mark.parametrize("name,requests", [("code", 8_819), ("conv", 19_366)])
def test_azure_real_traces(name: str, requests: int) -> None:
    path = trace_path(f"azure/AzureLLMInferenceTrace_{name}.csv")
    got = collect(azure(path))
    frame = pd.read_csv(path)
    assert got["offsets"].shape[0] - 1 == requests == len(frame)
    assert got["blocks"].shape[0] == sum(math.ceil(c / 256) for c in frame["ContextTokens"])
    assert np.unique(got["blocks"]).shape[0] == got["blocks"].shape[0]
    stamps = pd.to_datetime(frame["TIMESTAMP"], format="ISO8601")
    assert got["arrival_s"][-1] == pytest.approx((stamps.iloc[-1] - stamps.iloc[0]).total_seconds(), abs=1e-6)


# ------------------------------------------------------------------ constant memory
def _peak_while_streaming(w: Workload) -> tuple[int, int]:
    """(tracemalloc peak, Arrow pool peak) in bytes while the chunks are consumed one by one."""
    tracemalloc.start()
    arrow_peak = 0
    try:
        refs = 0
        for c in w.chunks():
            refs += c.n_refs
            arrow_peak = max(arrow_peak, pa.total_allocated_bytes())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refs > 0
    return peak, arrow_peak


def test_readers_memory_does_not_grow_with_the_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A trace 8x longer streams within about the same peak memory (and far below its own size).

    Chunks are made small so that both traces span many of them, as real traces span many of the
    default size.
    """
    import exo_sim.tracecsv
    import exo_sim.workloads.mooncake

    monkeypatch.setattr(exo_sim.workloads.mooncake, "CHUNK_LINES", 256)
    monkeypatch.setattr(exo_sim.tracecsv, "BLOCK_BYTES", 1 << 11)
    sizes = {"small": 10_000, "large": 80_000}
    peaks: dict[str, dict[str, tuple[int, int]]] = {"mooncake": {}, "csv": {}, "azure": {}}
    rng = np.random.default_rng(0)
    for label, n in sizes.items():
        lengths = rng.integers(1, 4096, n)
        with open(tmp_path / f"{label}.jsonl", "w") as f:
            nid = 0
            for i, length in enumerate(lengths.tolist()):
                k = -(-length // 512)
                f.write(json.dumps(rows(i, length, 5, list(range(nid, nid + k)))) + "\n")
                nid += k // 2 + 1
        peaks["mooncake"][label] = _peak_while_streaming(mooncake(tmp_path / f"{label}.jsonl"))
        pd.DataFrame({"time": np.arange(n), "lbn": rng.integers(0, 10_000, n)}).to_csv(
            tmp_path / f"{label}.csv", index=False
        )
        peaks["csv"][label] = _peak_while_streaming(csv_workload(tmp_path / f"{label}.csv"))
        stamps = pd.Timestamp("2023-11-16 18:17:03") + pd.to_timedelta(np.arange(n) * 10, unit="ms")
        pd.DataFrame(
            {"TIMESTAMP": stamps.strftime("%Y-%m-%d %H:%M:%S.%f"), "ContextTokens": lengths, "GeneratedTokens": 5}
        ).to_csv(tmp_path / f"{label}_az.csv", index=False)
        peaks["azure"][label] = _peak_while_streaming(azure(tmp_path / f"{label}_az.csv"))
    for reader, p in peaks.items():
        small_py, small_arrow = p["small"]
        large_py, large_arrow = p["large"]
        large_file = (tmp_path / {"mooncake": "large.jsonl", "csv": "large.csv", "azure": "large_az.csv"}[reader]).stat().st_size
        assert large_py < 1.5 * small_py + (1 << 17), (reader, p)
        assert large_arrow < 1.5 * small_arrow + (1 << 16), (reader, p)
        assert large_py < large_file / 2, (reader, p, large_file)


# ------------------------------------------------------------------ through the CLIs
def run(tool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_replay_refuses_a_bad_line_mid_stream_and_writes_no_summary(tmp_path: Path) -> None:
    lines = [rows(i, 1024, 1, [i, i + 1]) for i in range(3 * CHUNK_LINES)]
    lines[2 * CHUNK_LINES + 10] = rows(5 * CHUNK_LINES, 1024, 1, [1, 2, 3])
    path = write_jsonl(tmp_path / "bad.jsonl", lines)
    out = tmp_path / "run"
    r = run(
        "exo-replay", "experiment=single_tier", "capacity_blocks=100", "policy=lru", "workload=mooncake",
        f"workload.path={path}", f"hydra.run.dir={out}", cwd=tmp_path,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: trace {path} line {2 * CHUNK_LINES + 11}: has 3 hash_ids but input_length 1024 needs "
        "ceil(1024 / 512) = 2."
    )
    assert "Traceback" not in r.stderr
    assert not (out / "summary.json").exists()
    assert not (out / "timeseries.parquet").exists()


def test_single_tier_check_on_mooncake_matches_libcachesim(tmp_path: Path) -> None:
    """``exo-replay experiment=single_tier ... workload=mooncake workload.path=F``: one block per hash id.

    libCacheSim counts every resident object as a hit, so this runs under ``hierarchy.reuse=block``;
    the same command under prefix reuse (the default for a KV cache) is checked against vLLM in
    tests/test_vllm_prefix.py.
    """
    lcs = pytest.importorskip("libcachesim", reason="libcachesim (dev extra) is not installed")
    path = trace_path("mooncake/synthetic_trace.jsonl")
    with open(path) as f:
        ids = np.array([h for line in f for h in json.loads(line)["hash_ids"]], dtype=np.int64)
    oracle = tmp_path / "mc.oracleGeneral.bin"
    rec = np.zeros(ids.shape[0], dtype=[("ts", "<u4"), ("id", "<u8"), ("size", "<u4"), ("next", "<i8")])
    rec["id"], rec["size"], rec["next"] = ids + 1, 1, -1
    rec.tofile(oracle)
    classes = {"lru": "LRU", "fifo": "FIFO"}
    for policy, capacity in [("lru", 2000), ("fifo", 20_000)]:
        out = tmp_path / f"{policy}-{capacity}"
        r = run(
            "exo-replay", "experiment=single_tier", f"capacity_blocks={capacity}", f"policy={policy}",
            "workload=mooncake", f"workload.path={path}", "hierarchy.reuse=block", f"hydra.run.dir={out}",
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr
        s = json.loads((out / "summary.json").read_text())
        assert s["block_tokens"] == 512 and s["workload"]["blocks_per_hash_id"] == 1
        assert s["accesses"] == ids.shape[0]
        params = lcs.ReaderInitParam()
        params.ignore_obj_size = True
        reader = lcs.TraceReader(str(oracle), lcs.TraceType.ORACLE_GENERAL_TRACE, params)
        miss_ratio, _ = getattr(lcs, classes[policy])(capacity).process_trace(reader)
        assert s["tiers"][0]["misses"] == round(miss_ratio * ids.shape[0])


def test_azure_replay_summary_says_there_is_no_reuse(make_cfg: Callable[..., Any]) -> None:
    path = trace_path("azure/AzureLLMInferenceTrace_code.csv")
    cfg = make_cfg("experiment=single_tier", "capacity_blocks=1000", "workload=azure", f"workload.path={path}",
                   "workload.max_requests=500")
    s = run_replay(cfg).summary
    assert s["tiers"][0]["hits"] == 0
    assert s["workload"]["reuse"] == "none"
    assert any("no block hashes" in n for n in s["notes"])


def test_readers_are_registered_with_their_configs(make_cfg: Callable[..., Any]) -> None:
    for kind in ("mooncake", "libcachesim_csv", "azure", "azure_conv"):
        cfg = make_cfg(f"workload={kind}")
        w = make_workload(cfg.workload, 256)
        assert w.kind == cfg.workload.kind
        assert str(cfg.workload.path).startswith(str(cfg.paths.traces))
