"""What the executor measured: each link's batched reads and writes, each codec's work, the births.

Each batched read and write is timed (``perf_counter_ns``; CUDA events when a GPU store takes part)
and counted against its link (:mod:`~exo_runtime.executor.linkio`); codec work against its codec;
generating a born block's data against the births. :meth:`Meters.measured` renders them for
``summary.json``.
"""

from __future__ import annotations

from typing import Any

import torch

from exo_runtime.codecs import Codec
from exo_runtime.executor.records import BIRTH
from exo_runtime.timing import CodecMeter, Meter, Span
from exo_sim.spec import Spec


class Meters:
    """Meters per link, per codec and for births.

    Args:
        elements: float32 elements of one block (codec bytes are 4 per element).
    """

    def __init__(self, elements: int) -> None:
        self.elements = elements
        self.link_read: dict[tuple[int, int], Meter] = {}
        self.link_write: dict[tuple[int, int], Meter] = {}
        self.birth_meter = Meter()
        """Generating born blocks' data."""
        self.birth_write: dict[int, Meter] = {}
        """Writing born blocks, per destination tier."""
        self.codec_meters: dict[str, CodecMeter] = {}
        self.births = 0
        """Blocks whose data was generated or stored as born."""

    def codec(self, name: str) -> CodecMeter:
        """The meter of codec ``name`` (made on first use)."""
        meter = self.codec_meters.get(name)
        if meter is None:
            meter = self.codec_meters[name] = CodecMeter()
        return meter

    def read(self, s: int, k: int) -> Meter:
        """The meter of the link from tier ``s`` to tier ``k``'s reads."""
        return self.link_read.setdefault((s, k), Meter())

    def write(self, s: int, k: int) -> Meter:
        """The meter of the writes into tier ``k`` from tier ``s`` (or of births into ``k``)."""
        return self.birth_write.setdefault(k, Meter()) if s == BIRTH else self.link_write.setdefault((s, k), Meter())

    def encode(self, codec: Codec, xs: torch.Tensor, rows: torch.Tensor) -> list[float]:
        """Encode ``xs`` into ``rows`` with ``codec``, timed and counted; each row's error bound."""
        meter = self.codec(codec.name)
        n = xs.shape[0]
        with Span(False) as sp:
            got = codec.encode(xs, rows).tolist()
        meter.encode.add(4 * self.elements * n, sp.ns, n)
        for e in got:
            meter.max_error_bound = max(meter.max_error_bound, e)
        return got

    def decode(self, codec: Codec, rows: torch.Tensor, xs: torch.Tensor) -> None:
        """Decode ``rows`` into ``xs`` with ``codec``, timed and counted."""
        meter = self.codec(codec.name)
        n = xs.shape[0]
        with Span(False) as sp:
            codec.decode(rows, xs)
        meter.decode.add(4 * self.elements * n, sp.ns, n)

    def measured(self, spec: Spec, cuda: bool) -> dict[str, Any]:
        """Measured per-link bandwidth and per-codec throughput, for ``summary.json``."""
        names = [t.name for t in spec.tiers]
        links = []
        for key in sorted(set(self.link_read) | set(self.link_write)):
            r, w = self.link_read.get(key, Meter()), self.link_write.get(key, Meter())
            s, k = key
            ns = r.ns + w.ns
            links.append(
                {
                    "src": names[s],
                    "dst": names[k],
                    "src_medium": spec.tiers[s].medium,
                    "dst_medium": spec.tiers[k].medium,
                    "bytes": r.bytes,
                    "blocks": r.blocks,
                    "block_bytes": spec.tiers[s].block_bytes,
                    "read_s": r.ns / 1e9,
                    "write_s": w.ns / 1e9,
                    "seconds": ns / 1e9,
                    "bandwidth_gbps": r.bytes / ns if ns else None,
                    "read_ops": r.ops,
                    "write_ops": w.ops,
                    "device_s": (r.device_ns + w.device_ns) / 1e9 if cuda else None,
                }
            )
        codecs = []
        for name, m in sorted(self.codec_meters.items()):
            codecs.append(
                {
                    "codec": name,
                    "encode_bytes": m.encode.bytes,
                    "encode_s": m.encode.ns / 1e9,
                    "encode_gbps": m.encode.gbps,
                    "decode_bytes": m.decode.bytes,
                    "decode_s": m.decode.ns / 1e9,
                    "decode_gbps": m.decode.gbps,
                    "max_error_bound": m.max_error_bound,
                    "max_error_measured": m.max_error_measured,
                }
            )
        return {
            "links": links,
            "codecs": codecs,
            "births": {
                "blocks": self.births,
                "generate_bytes": self.birth_meter.bytes,
                "generate_s": self.birth_meter.ns / 1e9,
                "writes": [
                    {"dst": names[k], "bytes": m.bytes, "seconds": m.ns / 1e9, "bandwidth_gbps": m.gbps}
                    for k, m in sorted(self.birth_write.items())
                ],
                "note": "seeded birth data generated and written: the runtime's stand-in for recomputing",
            },
            "throughput_bytes_note": "codec bytes are float32 bytes of the elements (4 per element)",
        }
