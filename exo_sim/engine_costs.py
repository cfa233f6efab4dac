"""What a serving engine spends on a request besides its prefill (``hardware.engine``).

TTFT = queueing + loading the cached prefix + prefilling the rest. Around the prefill (its cost is
:mod:`exo_sim.compute`) any serving engine with a tiered KV cache also:

* **schedules** the request: looks up its blocks' prefix in the cache and builds its block table —
  ``request_us`` per request (the engine's fixed work for one: its step, its token ids, its
  bookkeeping) plus ``schedule_us_per_block`` per block the request names;
* **moves blocks between tiers** (promotions of its cached blocks, demotions of the victims that make
  room): ``copies: dma`` — copy engines beside the compute (a GPU's DMA engines) carry them over the
  links while the compute engine waits only for what it needs; ``copies: host`` — the engine's own
  thread does each copy, one after another, before the prefill (a CPU server; an engine that swaps
  blocks synchronously). A host copy goes straight from its source to its destination memory: it
  takes the sum of the links' latencies and per-block costs plus its bytes over the slowest link;
* **loads the cached prefix into the forward pass**: reads it out of the top tier, verifies it and
  decodes it from the tier's codec — ``kv_load_block_us`` per block plus bytes over
  ``kv_load_gbps`` (unset: attention reads the top tier in place, as a GPU reads KV in VRAM: the
  prefill cost's ``d`` term already counts it);
* **stores the new KV** into the top tier after the first token: encodes it in the tier's codec,
  checksums and writes it — ``kv_store_block_us`` per block plus bytes over ``kv_store_gbps``
  (unset: the forward pass writes KV in place), and ``finish_us`` per request for the rest of its
  bookkeeping. The engine is busy meanwhile: the next request waits.
  So it is while it computes a request's written (output) blocks' KV, after the first token (prefix
  reuse: the prefill cost of those tokens after the prompt; exo-run computes them in one forward
  pass, not token by token, and decoding is not modelled).

Shipped profiles state these as assumptions; ``exo-calibrate`` measures them on the host with the
runtime's own engine and writes them into the calibrated profile.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exo_sim.errors import ConfigError

Locator = Callable[[str], "str | None"]

COPY_MODES = ("dma", "host")


@dataclass(frozen=True)
class EngineCosts:
    """``hardware.engine``, in seconds (see the module docstring).

    Attributes:
        host_copies: the engine's own thread moves blocks between tiers, before the prefill.
        request_s: the engine's fixed time per request before its first token.
        schedule_s_per_block: scheduling time per block the request names.
        load_s_per_block, load_s_per_byte: loading the cached prefix out of the top tier.
        store_s_per_block, store_s_per_byte: storing the new blocks into the top tier.
        finish_s: the engine's fixed time per request after its first token.
        source: ``"assumed"`` (a shipped profile) or ``"calibrated"`` (``exo-calibrate``).
    """

    host_copies: bool = False
    request_s: float = 0.0
    schedule_s_per_block: float = 0.0
    load_s_per_block: float = 0.0
    load_s_per_byte: float = 0.0
    store_s_per_block: float = 0.0
    store_s_per_byte: float = 0.0
    finish_s: float = 0.0
    source: str = "assumed"

    def schedule_s(self, blocks: int) -> float:
        """Seconds to schedule a request naming ``blocks`` blocks (its fixed time included)."""
        return self.request_s + blocks * self.schedule_s_per_block

    def load_s(self, blocks: int, nbytes: int) -> float:
        """Seconds to load ``blocks`` cached blocks (``nbytes`` as the top tier stores them)."""
        return blocks * self.load_s_per_block + nbytes * self.load_s_per_byte if blocks else 0.0

    def store_s(self, blocks: int, nbytes: int) -> float:
        """Seconds after the first token: the request's fixed finishing time and storing its new blocks.

        ``blocks`` new blocks of ``nbytes`` in the top tier's codec.
        """
        return self.finish_s + (blocks * self.store_s_per_block + nbytes * self.store_s_per_byte if blocks else 0.0)

    def as_dict(self) -> dict[str, Any]:
        """The figures, for a run's summary."""
        return {
            "copies": "host" if self.host_copies else "dma",
            "request_us": self.request_s * 1e6,
            "schedule_us_per_block": self.schedule_s_per_block * 1e6,
            "kv_load_block_us": self.load_s_per_block * 1e6,
            "kv_load_gbps": (1e-9 / self.load_s_per_byte) if self.load_s_per_byte else None,
            "kv_store_block_us": self.store_s_per_block * 1e6,
            "kv_store_gbps": (1e-9 / self.store_s_per_byte) if self.store_s_per_byte else None,
            "finish_us": self.finish_s * 1e6,
            "source": self.source,
        }


def _fail(locate: Locator | None, key: str, problem: str) -> ConfigError:
    return ConfigError(key, problem, locate(key) if locate else None)


def resolve_engine_costs(cfg: Any, locate: Locator | None = None) -> EngineCosts:
    """``hardware.engine`` of a composed root config, checked (absent: nothing but the prefill).

    Raises:
        ConfigError: naming the first invalid key.
    """
    eng = getattr(cfg.hardware, "engine", None)
    if eng is None:
        return EngineCosts()
    copies = str(eng.copies)
    if copies not in COPY_MODES:
        raise _fail(locate, "hardware.engine.copies", f"is {copies!r}, not one of {', '.join(COPY_MODES)}")

    def micros(name: str) -> float:
        value = getattr(eng, name)
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise _fail(locate, f"hardware.engine.{name}", f"must be a number of microseconds >= 0, got {value!r}")
        return float(value) * 1e-6

    def per_byte(name: str) -> float:
        value = getattr(eng, name)
        if value is None:
            return 0.0
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise _fail(locate, f"hardware.engine.{name}", f"must be a number of GB/s > 0 (or null), got {value!r}")
        return 1e-9 / float(value)

    return EngineCosts(
        host_copies=copies == "host",
        request_s=micros("request_us"),
        schedule_s_per_block=micros("schedule_us_per_block"),
        load_s_per_block=micros("kv_load_block_us"),
        load_s_per_byte=per_byte("kv_load_gbps"),
        store_s_per_block=micros("kv_store_block_us"),
        store_s_per_byte=per_byte("kv_store_gbps"),
        finish_s=micros("finish_us"),
        source="calibrated" if bool(getattr(eng, "calibrated", False)) else "assumed",
    )


__all__ = ["COPY_MODES", "EngineCosts", "resolve_engine_costs"]
