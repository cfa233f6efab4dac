"""Small configs for the runtime's tests: ``ci_cpu`` with its tiers cut down to tens of blocks.

The shipped profiles hold 1-8 GiB per tier; these overrides size each tier in blocks instead
(``capacity_blocks``, bytes derived), with the small ``rag_chunk_minilm`` payload, so a run takes a
second and a few MiB.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from exo_sim.cli.entry import CONF_DIR, setup

REPO = Path(__file__).resolve().parents[1]


def tiers(*blocks: int) -> list[str]:
    """Overrides giving tier ``i`` of the profile ``blocks[i]`` blocks."""
    out = []
    for i, n in enumerate(blocks):
        out += [f"hardware.tiers.{i}.capacity_bytes=null", f"hardware.tiers.{i}.capacity_blocks={n}"]
    return out


SMALL = [
    "hardware=ci_cpu",
    "payload=rag_chunk_minilm",
    *tiers(40, 80, 200),
    "output.progress=false",
    "runtime.telemetry_interval_s=0.05",
    "runtime.manifest_interval_s=0.05",
    "runtime.staging_bytes=4194304",
    "runtime.codec_scratch_bytes=4194304",
    "runtime.compute=seeded",
]
"""ci_cpu (shm / ram / file) at 40 / 80 / 200 blocks, seed_mix codecs (int8 / fp16 / fp32).

``runtime.compute=seeded``: these configs test the executor's bytes and decisions, so no model runs
(blocks are seeded data); the engine's own tests (``tests/test_runtime_engine.py``) override it with
``runtime.compute=model``.
"""

ENGINE = ["runtime.compute=model", "payload=tiny_llama_kv", "block_tokens=16"]
"""The engine's model on ci_cpu: tiny_llama_kv's real prefill, 16-token blocks (8 KiB of fp16 KV)."""

ZIPF = [
    "workload=zipf",
    "workload.objects=600",
    "workload.accesses=3000",
    "workload.blocks_per_request=4",
    "workload.alpha=0.9",
]
"""The workload unless the overrides choose another: 750 requests of 4 Zipf(0.9) blocks out of 600."""


def small(*overrides: str) -> list[str]:
    """``SMALL``, the Zipf workload unless ``overrides`` choose a workload, then ``overrides``."""
    workload = [] if any(o.startswith("workload=") for o in overrides) else ZIPF
    return [*SMALL, *workload, *overrides]


def compose_cfg(*overrides: str) -> DictConfig:
    """Compose ``conf/config.yaml`` with :func:`small` ``(overrides)``."""
    setup()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        return compose("config", overrides=small(*overrides))


def cli(module: str, *args: str, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run ``python -m module args`` (a Hydra app) from the repository, capturing its output."""
    env = dict(os.environ, HYDRA_FULL_ERROR="0")
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single `error: ...` line a refused command printed on stderr."""
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]
