"""Byte sizes as written in configs (exo_sim.units): values worked out by hand, refusals in one sentence."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from exo_sim.errors import ConfigError
from exo_sim.spec import build_spec
from exo_sim.units import parse_bytes, resolve_sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("80GB", 80 * 1000**3),
        ("80GiB", 80 * 1024**3),  # 85,899,345,920: conf/hardware/h100_node.yaml's VRAM
        ("1TiB", 1_099_511_627_776),
        ("8TB", 8_000_000_000_000),
        ("2 GiB", 2_147_483_648),
        ("512kB", 512_000),
        ("64MiB", 67_108_864),
        ("1.5GiB", 1_610_612_736),  # 3 x 2^29
        ("0.1GB", 100_000_000),  # exact in decimal, where 0.1 x 1e9 in binary floating point is not
        ("4096", 4096),
        ("4096B", 4096),
        (4096, 4096),
        (2e12, 2_000_000_000_000),  # YAML's 2.0e12
        (0, 0),
    ],
)
def test_sizes(text: object, expected: int) -> None:
    got = parse_bytes(text, "k")
    assert got == expected and isinstance(got, int)


@pytest.mark.parametrize(
    "text",
    ["80G", "80Gb", "80gb", "80 gb maybe", "80KB", "80Gi", "GB", "abc", "1e9", "80 GB GiB"],
)
def test_ambiguous_sizes_are_refused_naming_the_key(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_bytes(text, "hardware.tiers[1].capacity_bytes")
    msg = str(err.value)
    assert "`hardware.tiers[1].capacity_bytes`" in msg and repr(text) in msg and "ambiguous" in msg
    assert "\n" not in msg and msg.endswith(".") and msg.count(". ") == 0


@pytest.mark.parametrize(("value", "why"), [("0.3B", "whole number"), (1.5, "whole number"), (True, "not a size"),
                                            ("-5GB", ">= 0"), ([1], "not a size")])
def test_other_bad_values(value: object, why: str) -> None:
    with pytest.raises(ConfigError, match=why):
        parse_bytes(value, "runtime.staging_bytes")


def test_resolve_sizes_rewrites_every_byte_field(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg(
        "hardware=ci_small",
        "hardware.tiers.0.capacity_bytes=256MiB",
        "hardware.tiers.3.capacity_bytes=8GB",
        "hardware.gpu.workspace_bytes=1GiB",
        "runtime.staging_bytes=64MiB",
        "runtime.codec_scratch_bytes=32MB",
    )
    resolve_sizes(cfg)
    assert [t.capacity_bytes for t in cfg.hardware.tiers] == [268_435_456, 1 << 30, 2 << 30, 8_000_000_000]
    assert cfg.hardware.gpu.workspace_bytes == 1 << 30
    assert cfg.runtime.staging_bytes == 64 << 20 and cfg.runtime.codec_scratch_bytes == 32_000_000
    assert cfg.runtime.codec_scratch_bytes == 32_000_000 and cfg.hardware.tiers[1].capacity_bytes == 1 << 30


def test_build_spec_reads_sizes_and_names_a_bad_one(make_cfg: Callable[..., DictConfig]) -> None:
    spec = build_spec(make_cfg("hardware=ci_small", "hardware.tiers.2.capacity_bytes=3GiB"))
    assert spec.tiers[2].capacity_bytes == 3 * 2**30
    with pytest.raises(ConfigError, match=r"`runtime.staging_bytes`.*'1M'"):
        build_spec(make_cfg("hardware=ci_small", "runtime.staging_bytes=1M"))


def test_cli_refuses_an_ambiguous_size_in_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        ["exo-sim", "hardware=ci_small", "hardware.tiers.1.capacity_bytes=1G", f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "`hardware.tiers[1].capacity_bytes`" in lines[0] and "'1G'" in lines[0]
    assert "command-line override" in lines[0]
