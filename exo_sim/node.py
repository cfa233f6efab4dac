"""A node described in one line: ``gpu=h100_80gb gpus=4 tp=4 host_memory=1TiB nvme=8TB``.

``gpu=<device>`` chooses a device of the catalogue (``conf/gpu/<device>.yaml``: memory, dense bf16/fp8
peaks, memory bandwidth, PCIe generation, each from its spec sheet) and the ``hardware=node`` profile
(``conf/hardware/node.yaml``), whose four tiers are built here from the root keys. The hierarchy is
one GPU's share of the node (one tensor-parallel rank, as every byte figure of a payload is per rank)::

    vram    the device's memory (the serving engine's weights and workspace are deducted from it
            later, per rank: exo_sim.kv_budget)
    pinned  node.pinned_fraction x host_memory, at most node.pin_limit (what the cgroup / memlock
            limit lets the engine page-lock), shared out over the gpus
    ram     host_memory - pinned - node.host_reserve, shared out over the gpus
    nvme    nvme, shared out over the gpus

The link between GPU and pinned memory is the device's PCIe x16 link at ``PCIE_EFFICIENCY`` of its
raw rate; page-locking the pinned tier at start-up takes ``pinned / pin_gbps`` (``cudaHostRegister``
runs at about 1-2 GB/s: ``plan.pin_gbps_low`` .. ``plan.pin_gbps_high``), said in the profile's
description.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exo_sim.errors import ConfigError
from exo_sim.units import Locator, parse_bytes, parse_optional_bytes

CATALOGUE_DIR = Path(__file__).resolve().parents[1] / "conf" / "gpu"
"""The device catalogue: one option of the ``gpu`` config group per device."""

PCIE_GT_PER_S: dict[int, float] = {3: 8.0, 4: 16.0, 5: 32.0}
"""Raw rate of one PCIe lane (GT/s) per generation; 128b/130b encoding for each of these."""

PCIE_EFFICIENCY = 0.8
"""Fraction of the raw x16 rate a bulk copy reaches (an assumption: TLP headers, DMA setup)."""


def devices() -> list[str]:
    """The catalogue's device names (options of ``gpu=``), sorted."""
    return sorted(p.stem for p in CATALOGUE_DIR.glob("*.yaml"))


def pcie_x16_bytes_per_s(gen: int) -> float:
    """Raw bytes/s of a PCIe x16 link in one direction: GT/s x 16 lanes x 128/130 / 8 bits."""
    return PCIE_GT_PER_S[gen] * 1e9 * 16 * 128 / 130 / 8


@dataclass(frozen=True)
class NodeTiers:
    """One GPU's share of the node, in bytes, and what page-locking the node's pinned memory costs."""

    vram_bytes: int
    pinned_bytes: int
    ram_bytes: int
    nvme_bytes: int
    pinned_node_bytes: int
    pin_s_fastest: float
    pin_s_slowest: float
    link_gbps: float

    def description(self, device: str, gpus: int, tp: int) -> str:
        """One line for the profile's ``description``."""
        gib = 1 << 30
        return (
            f"{gpus} x {device} (tp={tp}), per GPU: {self.vram_bytes / gib:.1f} GiB VRAM / "
            f"{self.pinned_bytes / gib:.1f} GiB pinned / {self.ram_bytes / gib:.1f} GiB RAM / "
            f"{self.nvme_bytes / 1e12:.2f} TB NVMe; pinning the node's {self.pinned_node_bytes / gib:.0f} GiB "
            f"takes {self.pin_s_fastest:.0f}-{self.pin_s_slowest:.0f} s at start-up"
        )


def node_tiers(
    *,
    device_memory_bytes: int,
    pcie_gen: int,
    gpus: int,
    host_memory_bytes: int,
    nvme_bytes: int,
    pinned_fraction: float,
    pin_limit_bytes: int | None,
    host_reserve_bytes: int,
    pin_gbps_low: float,
    pin_gbps_high: float,
) -> NodeTiers:
    """Build the four tiers of one GPU's share (see the module's docstring); inputs already checked."""
    pinned_node = int(host_memory_bytes * pinned_fraction)
    if pin_limit_bytes is not None:
        pinned_node = min(pinned_node, pin_limit_bytes)
    ram_node = host_memory_bytes - pinned_node - host_reserve_bytes
    return NodeTiers(
        vram_bytes=device_memory_bytes,
        pinned_bytes=pinned_node // gpus,
        ram_bytes=ram_node // gpus,
        nvme_bytes=nvme_bytes // gpus,
        pinned_node_bytes=pinned_node,
        pin_s_fastest=pinned_node / (pin_gbps_high * 1e9),
        pin_s_slowest=pinned_node / (pin_gbps_low * 1e9),
        link_gbps=pcie_x16_bytes_per_s(pcie_gen) * PCIE_EFFICIENCY / 1e9,
    )


def _fail(locate: Locator | None, key: str, problem: str) -> ConfigError:
    return ConfigError(key, problem, locate(key) if locate else None)


def _unbuilt(hw: Any) -> bool:
    """Whether ``hw``'s tiers still wait for a device (``${exo_node:...}``), not figures written in."""
    from omegaconf import DictConfig, OmegaConf

    return any(isinstance(t, DictConfig) and OmegaConf.is_interpolation(t, "capacity_bytes") for t in hw.tiers)


def check_node(cfg: Any, locate: Locator | None = None) -> NodeTiers | None:
    """Check the one-line node's keys and build its tiers; ``None`` when no ``gpu`` is chosen.

    Raises:
        ConfigError: one sentence naming the key: ``hardware=node`` without a device, a device
            missing a figure, a size that is not one (``exo_sim.units``), ``gpus`` or ``tp`` not
            positive, ``tp`` not dividing ``gpus`` or the payload's KV heads, no host memory left.
    """
    dev = getattr(cfg, "gpu", None)
    hw = getattr(cfg, "hardware", None)
    if dev is None:
        if hw is not None and getattr(hw, "name", None) == "node" and _unbuilt(hw):
            choices = ", ".join(devices())
            raise _fail(locate, "gpu", f"is not set; hardware=node is built from a device: gpu=<one of {choices}>")
        for key, unset in (("gpus", 1), ("tp", 1), ("host_memory", None), ("nvme", None)):
            value = getattr(cfg, key, unset)
            if value != unset:
                raise _fail(locate, key, f"is {value}, but no gpu=<device> is chosen to build a node from "
                            "(without one, give hardware= and payload.tensor_parallel)")
        return None
    gpus, tp = int(cfg.gpus), int(cfg.tp)
    if gpus <= 0:
        raise _fail(locate, "gpus", f"must be > 0, got {gpus}")
    if tp <= 0:
        raise _fail(locate, "tp", f"must be > 0, got {tp}")
    if gpus % tp:
        raise _fail(locate, "tp", f"is {tp}, which does not divide gpus ({gpus}); a node runs whole TP groups")
    payload = getattr(cfg, "payload", None)
    if payload is not None and payload.kind == "kv_cache" and int(payload.kv_heads) > 0:
        kv = int(payload.kv_heads)
        if kv % tp and tp % kv:
            raise _fail(
                locate,
                "tp",
                f"is {tp}, which neither divides the KV heads of payload {payload.name} ({kv}) nor is a "
                f"multiple of them; choose tp among the divisors of {kv}",
            )
    if int(dev.pcie_gen) not in PCIE_GT_PER_S:
        raise _fail(locate, "gpu.pcie_gen", f"is {dev.pcie_gen}, not one of {', '.join(map(str, PCIE_GT_PER_S))}")
    sizes: dict[str, int] = {}
    for key, value in (("gpu.memory_bytes", dev.memory_bytes), ("host_memory", cfg.host_memory), ("nvme", cfg.nvme)):
        if value is None:
            raise _fail(locate, key, "is not set; give it as a size such as 1TiB or 8TB")
        sizes[key] = parse_bytes(value, key, locate(key) if locate else None)
        if sizes[key] <= 0:
            raise _fail(locate, key, f"must be > 0, got {value}")
    node = cfg.node
    frac = float(node.pinned_fraction)
    if not 0.0 <= frac < 1.0:
        raise _fail(locate, "node.pinned_fraction", f"must be in [0, 1), got {frac}")
    pin_limit = parse_optional_bytes(node.pin_limit, "node.pin_limit", locate("node.pin_limit") if locate else None)
    reserve = parse_bytes(node.host_reserve, "node.host_reserve", locate("node.host_reserve") if locate else None)
    tiers = node_tiers(
        device_memory_bytes=sizes["gpu.memory_bytes"],
        pcie_gen=int(dev.pcie_gen),
        gpus=gpus,
        host_memory_bytes=sizes["host_memory"],
        nvme_bytes=sizes["nvme"],
        pinned_fraction=frac,
        pin_limit_bytes=pin_limit,
        host_reserve_bytes=reserve,
        pin_gbps_low=float(cfg.plan.pin_gbps_low),
        pin_gbps_high=float(cfg.plan.pin_gbps_high),
    )
    if tiers.ram_bytes <= 0 or tiers.pinned_bytes <= 0 or tiers.nvme_bytes <= 0:
        raise _fail(
            locate,
            "host_memory" if tiers.nvme_bytes > 0 else "nvme",
            f"leaves a tier empty ({tiers.pinned_bytes} B pinned, {tiers.ram_bytes} B RAM, "
            f"{tiers.nvme_bytes} B NVMe per GPU after node.host_reserve {reserve} B)",
        )
    return tiers


def resolve(key: str, _root_: Any) -> Any:
    """The ``${exo_node:<key>}`` resolver of ``conf/hardware/node.yaml``: one figure of the built node.

    ``key`` is a field of :class:`NodeTiers` (``vram_bytes``, ``pinned_bytes``, ``ram_bytes``,
    ``nvme_bytes``, ``link_gbps``) or ``description``. The profile loaded on its own (its root is the
    hardware section, as the planner lists every profile) or without a device has no figures: ``None``.
    """
    tiers = check_node(_root_) if "gpus" in _root_ else None
    if tiers is None:
        return "a node built from gpu=<device> and its root keys (exo_sim/node.py)" if key == "description" else None
    if key == "description":
        return tiers.description(str(_root_.gpu.name), int(_root_.gpus), int(_root_.tp))
    return getattr(tiers, key)
