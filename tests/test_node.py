"""A node in one line (exo_sim.node, conf/gpu/, conf/hardware/node.yaml): tiers worked out by hand."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from omegaconf import DictConfig

from exo_sim.errors import ConfigError
from exo_sim.node import CATALOGUE_DIR, devices, pcie_x16_bytes_per_s
from exo_sim.spec import build_spec

GiB, TiB = 2**30, 2**40
NODE = ["gpu=h100_80gb", "gpus=4", "tp=4", "host_memory=1TiB", "nvme=8TB", "payload=llama3_70b_kv"]

# The spec sheets' figures, typed here from the sheets (not read from the catalogue):
# (memory GiB, dense bf16 TFLOP/s, dense fp8 TFLOP/s or None, memory bandwidth GB/s, PCIe generation)
SHEETS = {
    "h100_80gb": (80, 989.0, 1979.0, 3350.0, 5),
    "h200_141gb": (141, 989.0, 1979.0, 4800.0, 5),
    "a100_80gb": (80, 312.0, None, 2039.0, 4),
    "l40s_48gb": (48, 362.05, 733.0, 864.0, 4),
    "rtx4090_24gb": (24, 165.2, 330.3, 1008.0, 4),
    "rtx3070_8gb": (8, 40.6, None, 448.0, 4),
}


def test_the_catalogue_holds_the_six_devices_with_cited_figures(make_cfg: Callable[..., DictConfig]) -> None:
    assert devices() == sorted(SHEETS)
    for name, (mem_gib, bf16, fp8, bw, gen) in SHEETS.items():
        cfg = make_cfg(f"gpu={name}", "host_memory=256GiB", "nvme=4TB")
        g = cfg.gpu
        assert cfg.hardware.tiers[0].capacity_bytes == mem_gib * GiB, name
        assert g.bf16_dense_flops == pytest.approx(bf16 * 1e12) and g.memory_bytes_per_s == pytest.approx(bw * 1e9)
        assert (g.fp8_dense_flops is None) if fp8 is None else g.fp8_dense_flops == pytest.approx(fp8 * 1e12)
        assert g.pcie_gen == gen
        # the timed model's compute is the device's
        assert cfg.hardware.compute.peak_flops == g.bf16_dense_flops and cfg.hardware.compute.device == g.name
        text = (CATALOGUE_DIR / f"{name}.yaml").read_text()
        assert g.source.startswith("https://") and g.source in text.split("defaults:")[0]  # cited in the header
        assert yaml.safe_load(text)["gpu"]["source"] == g.source


def test_pcie_rate_by_hand() -> None:
    # Gen5: 32 GT/s x 16 lanes x 128/130 / 8 bits = 63.015 GB/s; Gen4 half of it
    assert pcie_x16_bytes_per_s(5) == pytest.approx(63.0154e9, rel=1e-5)
    assert pcie_x16_bytes_per_s(4) == pytest.approx(31.5077e9, rel=1e-5)


def test_h100_node_tiers_by_hand(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg(*NODE)
    caps = [t.capacity_bytes for t in cfg.hardware.tiers]
    # 1 TiB host: a quarter pinned (256 GiB), 16 GiB reserved, 752 GiB RAM; every figure over 4 GPUs
    assert caps == [80 * GiB, 64 * GiB, 188 * GiB, 2_000_000_000_000]
    assert cfg.hardware.links[0].bandwidth_gbps == pytest.approx(0.8 * 63.0154, rel=1e-5)
    assert cfg.payload.tensor_parallel == 4
    # pinning 256 GiB = 274.9 GB at 2 GB/s (137 s) to 1 GB/s (275 s)
    assert "pinning the node's 256 GiB takes 137-275 s" in cfg.hardware.description
    spec = build_spec(cfg)
    assert [t.capacity_bytes for t in spec.tiers] == caps
    # Llama-3-70B over 4 ranks: 70,553,706,496 bf16 parameters = 141.1 GB, about 35.3 GB a rank
    assert spec.tiers[0].weight_bytes == pytest.approx(70_553_706_496 * 2 / 4, rel=0.01)


def test_pin_limit_and_reserve(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg(*NODE, "node.pin_limit=64GiB", "node.host_reserve=0")
    caps = [t.capacity_bytes for t in cfg.hardware.tiers]
    assert caps[1:3] == [16 * GiB, (1024 - 64) * GiB // 4]
    assert "pinning the node's 64 GiB takes 34-69 s" in cfg.hardware.description


def test_hardware_profiles_are_unchanged(make_cfg: Callable[..., DictConfig]) -> None:
    cfg = make_cfg("hardware=h100_node", "payload=llama3_8b_kv")
    assert cfg.gpu is None and cfg.hardware.name == "h100_node"
    assert build_spec(cfg).tiers[1].capacity_bytes == 256 * GiB


@pytest.mark.parametrize(
    ("overrides", "key", "words"),
    [
        (["gpus=3", "tp=3"], "`tp`", "neither divides the KV heads of payload llama3_70b_kv (8)"),
        (["gpus=4", "tp=3"], "`tp`", "does not divide gpus (4)"),
        (["gpus=0"], "`gpus`", "must be > 0"),
        (["host_memory=1T"], "`host_memory`", "ambiguous"),
        (["nvme=null"], "`nvme`", "is not set"),
        (["node.pinned_fraction=1.0"], "`node.pinned_fraction`", "must be in [0, 1)"),
        (["host_memory=16GiB"], "`host_memory`", "leaves a tier empty"),
    ],
)
def test_bad_node_keys(make_cfg: Callable[..., DictConfig], overrides: list[str], key: str, words: str) -> None:
    base = [o for o in NODE if o.split("=")[0] not in {o2.split("=")[0] for o2 in overrides}]
    with pytest.raises(ConfigError) as err:
        build_spec(make_cfg(*base, *overrides))
    assert key in str(err.value) and words in str(err.value)


def test_node_keys_without_a_device_are_refused(make_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(ConfigError, match=r"`host_memory` is 1TiB, but no gpu=<device> is chosen"):
        build_spec(make_cfg("hardware=ci_small", "host_memory=1TiB"))
    with pytest.raises(ConfigError, match=r"`tp` is 2, but no gpu=<device> is chosen"):
        build_spec(make_cfg("hardware=ci_small", "tp=2"))


def test_node_profile_without_a_device(make_cfg: Callable[..., DictConfig]) -> None:
    with pytest.raises(ConfigError, match=r"`gpu` is not set; hardware=node is built from a device: gpu=<one of a100_80gb"):
        build_spec(make_cfg("hardware=node"))


def _exo_sim(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["exo-sim", *overrides, f"hydra.run.dir={tmp_path}"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_one_line_node_end_to_end(tmp_path: Path) -> None:
    r = _exo_sim(tmp_path, "gpu=rtx3070_8gb", "host_memory=64GiB", "nvme=2TB",
                 "workload.objects=500", "workload.accesses=2000", "workload.blocks_per_request=2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sim node/seed/seed_mix:")
    s = json.loads((tmp_path / "summary.json").read_text())
    # 8 GiB card; 64 GiB host: 16 GiB pinned, 16 GiB reserved, 32 GiB RAM; 2 TB NVMe; one GPU
    assert [t["capacity_bytes"] for t in s["tiers"]] == [8 * GiB, 16 * GiB, 32 * GiB, 2_000_000_000_000]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["gpu=h100_80gbx", "host_memory=1TiB", "nvme=8TB"], "h100_80gb"),  # the choices are named
        ([*NODE[:2], "gpus=3", "tp=3", *NODE[3:]], "`tp`"),
        ([*NODE[:3], "host_memory=1T", *NODE[4:]], "`host_memory`"),
    ],
)
def test_bad_input_on_the_command_line_is_one_line(tmp_path: Path, overrides: list[str], words: str) -> None:
    r = _exo_sim(tmp_path, *overrides)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], r.stderr
