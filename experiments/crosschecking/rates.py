"""Speeds at a config's block size, and the timed model's settings that follow from a config.

Some speeds depend on the block's size and on what the runtime's one thread did just before (the
CPU's caches, the allocator, the drive's state), so the cross-check measures them for each config's
blocks rather than reading them off the calibrated profile (fitted over other sizes):

* codec speeds, the birth time (the runtime's "recompute" is seeded data generation, not a model's
  prefill: its rate becomes ``sim.prefill_tokens_per_s``) and the file tier's reads and writes, from
  the runtime's own meters on a fixed calibration workload of the config's payload and block size
  (:func:`~exo_runtime.hostcosts.measure_in_run`) — never from the config's own run;
* copies between two host-memory tiers, by the profile's own copy benchmark at the config's sizes
  (:func:`~exo_runtime.calibrate.measure_link`, as the executor copies in a run's steady state).

:func:`model_overrides` turns them, with the runtime's batch limit for the config's blocks
(:func:`~exo_runtime.run.batch_move_limit`) and its arrivals, into overrides of the timed model's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from exo_runtime.calibrate import measure_link
from exo_runtime.hostcosts import InRunRates, measure_in_run
from exo_runtime.run import batch_move_limit
from exo_sim.spec import build_spec

MEMORY_MEDIA = ("ram", "shm", "pinned")
"""Host-memory media: a copy between two of them is one straight memory copy."""


class BlockRates:
    """This host's codec speeds and birth time at a config's block size, measured once per size.

    Both depend on the block's size and on what the runtime's thread does between two calls (the
    caches, the allocator), so they are taken from the runtime's own meters on a fixed calibration
    workload at the config's payload and block size (:func:`~exo_runtime.hostcosts.measure_in_run`),
    not from the config's own run.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._rates: dict[str, InRunRates] = {}
        self._copies: dict[str, float] = {}

    def rates(self, cfg: Any) -> InRunRates:
        """The rates for ``cfg``'s payload, block size and runtime knobs."""
        key = repr((OmegaConf.to_container(cfg.payload, resolve=True), int(cfg.block_tokens), int(cfg.seed),
                    OmegaConf.to_container(cfg.runtime, resolve=True), str(cfg.hardware.name)))
        if key not in self._rates:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._rates[key] = measure_in_run(cfg, self.data_dir)
        return self._rates[key]

    def prefill_tokens_per_s(self, cfg: Any) -> float:
        """``block_tokens`` over the seconds the runtime takes to give birth to one block of ``cfg``."""
        return int(cfg.block_tokens) / self.rates(cfg).birth_s

    def codecs(self, cfg: Any) -> dict[str, tuple[float, float]]:
        """Encode and decode GB/s of every codec on ``cfg``'s blocks."""
        return self.rates(cfg).codecs

    def memory_copy_gbps(self, cfg: Any, src: str, src_medium: str, dst: str, dst_medium: str,
                         block_bytes: int) -> float:
        """GB/s of one straight copy of ``block_bytes`` between two host-memory tiers, as the runtime
        copies in a run (:func:`~exo_runtime.calibrate.measure_link`, source checked, destination warm).

        A memory copy's time is not linear in its size across the CPU's caches, so it is measured at
        the size the config copies rather than read off the profile's fit over other sizes.
        """
        checked = str(cfg.runtime.integrity) != "off"
        key = repr((src_medium, dst_medium, block_bytes, checked))
        if key not in self._copies:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            there, _ = measure_link(src, src_medium, dst, dst_medium, block_bytes, 64 * 2**20, 3,
                                    self.data_dir, check_source=checked, warm_destination=True)
            self._copies[key] = there.bandwidth_gbps
        return self._copies[key]


def model_overrides(cfg: Any, rates: BlockRates) -> tuple[list[str], float]:
    """The model's settings that follow from one config: its prefill rate (this host's birth rate
    of its blocks), the codecs its tiers use at its block size, its batches (the runtime's staging
    pool for its blocks), its arrivals."""
    spec = build_spec(cfg)
    rate = rates.prefill_tokens_per_s(cfg)
    out = [
        f"sim.prefill_tokens_per_s={rate:.6g}",
        f"sim.host.batch_moves={batch_move_limit(cfg, spec)}",
    ]
    if spec.content.elements:
        measured = rates.codecs(cfg)
        for codec in sorted({t.codec for t in spec.tiers if t.usable} & set(measured)):
            enc, dec = measured[codec]
            out += [f"hardware.codec_throughput.{codec}.encode_gbps={enc:.6g}",
                    f"hardware.codec_throughput.{codec}.decode_gbps={dec:.6g}"]
    measured_drive = rates.rates(cfg)
    media = {t.name: t.medium for t in spec.tiers}
    block = {t.name: t.block_bytes for t in spec.tiers}
    for i, link in enumerate(cfg.hardware.links):
        ends = (str(link.src), str(link.dst))
        for direction, (src, dst) in (("", ends), ("reverse_", ends[::-1])):
            latency = float(link.get(f"{direction}latency_us") or link.latency_us)
            if media[dst] == "file" or media[src] == "file":
                drive = measured_drive.writes.get(dst) if media[dst] == "file" else measured_drive.reads.get(src)
                bandwidth = drive.bandwidth_gbps(latency) if drive is not None else None
            elif media[src] in MEMORY_MEDIA and media[dst] in MEMORY_MEDIA:
                bandwidth, latency = rates.memory_copy_gbps(cfg, src, media[src], dst, media[dst], block[src]), 0.01
            else:
                continue
            if bandwidth is not None:
                out.append(f"hardware.links.{i}.{direction}bandwidth_gbps={bandwidth:.6g}")
                out.append(f"hardware.links.{i}.{direction}latency_us={latency:.6g}")
    if bool(cfg.runtime.pace_arrivals):
        out.append("sim.arrival=trace")
    return out, rate
