"""The engine's compute for one run: which model, on which device, checked to fit before anything is built.

``runtime.compute=model`` (the default):

* a ``kv_cache`` payload gets a :class:`~exo_runtime.engine.model.DecoderModel` of its architecture
  (seeded random weights, said so) on the GPU where there is one, else the CPU; refused first by
  :func:`~exo_runtime.engine.fit.check_engine_fits` (weights + one block's activations against the
  free memory — on a GPU less the VRAM tier's slab — and one block's estimated prefill time);
* a ``rag_chunk`` payload gets the MiniLM encoder (:mod:`~exo_runtime.engine.encoder`): a miss
  re-embeds its chunks.

``runtime.compute=seeded``: no model; blocks are seeded data (:mod:`exo_runtime.payload_data`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from exo_runtime.engine.content import BlockPrefill, ChunkEmbedding, ComputeClock
from exo_runtime.engine.encoder import MiniLMEncoder
from exo_runtime.engine.fit import EngineFit, available_bytes, check_engine_fits
from exo_runtime.engine.model import DecoderModel, default_compute_dtype
from exo_runtime.errors import MachineError
from exo_runtime.executor import BirthSource
from exo_runtime.payload_data import BlockFactory
from exo_runtime.settings import RuntimeSettings
from exo_sim.architecture import architecture_of
from exo_sim.spec import Spec

SEEDED_NOTE = (
    "runtime.compute=seeded: no model ran; computed blocks are seeded random data of the payload's shape "
    "and TTFT has no compute part"
)


@dataclass
class Compute:
    """What computes a run's blocks: a model, an encoder, or nothing (``seeded``)."""

    mode: str
    device: torch.device
    model: DecoderModel | None = None
    encoder: MiniLMEncoder | None = None
    fit: EngineFit | None = None
    clock: ComputeClock = field(init=False)

    def __post_init__(self) -> None:
        self.clock = ComputeClock(self.device)

    def describe(self, payload_name: str) -> dict[str, Any]:
        """The summary's ``model`` section: name, params, dtype, device, weights note."""
        if self.model is not None:
            m = self.model
            return {
                "name": payload_name,
                "kind": "decoder",
                "params": m.num_params(),
                "dtype": str(m.dtype).removeprefix("torch."),
                "device": str(m.device),
                "weights": m.weights_note,
                "fit": vars(self.fit) if self.fit is not None else None,
            }
        if self.encoder is not None:
            e = self.encoder
            return {
                "name": "all-MiniLM-L6-v2",
                "kind": "encoder",
                "params": e.arch.parameters(),
                "dtype": "float32",
                "device": str(e.device),
                "weights": e.weights,
            }
        return {"name": None, "kind": "none", "params": 0, "dtype": None, "device": None, "weights": SEEDED_NOTE}

    def line(self) -> str:
        """One phrase for the console: what computed and with which weights."""
        if self.model is not None:
            return f"model {self.model.num_params():,} params on {self.model.device}, {self.model.weights_note}"
        if self.encoder is not None:
            return f"encoder MiniLM-L6 on {self.encoder.device}, {self.encoder.weights}"
        return "no model (runtime.compute=seeded)"


def prepare_compute(cfg: Any, spec: Spec, settings: RuntimeSettings, vram_tier_bytes: int = 0) -> Compute:
    """Check the engine's model fits this host and build it (before the tiers are allocated).

    Raises:
        MachineError: the model does not fit (one sentence naming the payload to use instead), or a
            ``kv_cache`` payload that gives no architecture under ``compute=model``.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not settings.model:
        return Compute("seeded", device)
    if str(cfg.payload.kind) == "rag_chunk":
        return Compute("model", device, encoder=MiniLMEncoder(seed=int(cfg.seed), device=device))
    arch = architecture_of(cfg.payload)
    if arch is None:
        raise MachineError(
            f"payload {cfg.payload.name} gives only its KV shape (no hidden_size, heads or vocabulary), so the "
            "engine has no model to run; use a payload with an architecture or runtime.compute=seeded"
        )
    dtype = default_compute_dtype(device)
    room = None
    if device.type == "cuda":  # the VRAM tier's slab is allocated too: what the model may use is the rest
        room = available_bytes(device) - vram_tier_bytes
    fit = check_engine_fits(
        arch, dtype, device, payload_name=str(cfg.payload.name), block_tokens=spec.block_tokens, available=room
    )
    model = DecoderModel(arch, seed=int(cfg.seed), device=device, dtype=dtype)
    return Compute("model", device, model=model, fit=fit)


def birth_source(compute: Compute, cfg: Any, spec: Spec) -> BirthSource | None:
    """The executor's birth source: seeded data, one block's own compute (block reuse), or ``None``.

    ``None`` under prefix reuse: a block's KV is known only after the request's prefill
    (``serve.PrefixEngine`` stores it).
    """
    if compute.mode == "seeded":
        return BlockFactory(cfg.payload, spec.block_tokens, int(cfg.seed))
    if compute.encoder is not None:
        p = cfg.payload
        chunks = spec.block_tokens // int(p.tokens_per_chunk)
        nbytes = int(p.chunk_chars) * int(p.text_bytes_per_char)
        return ChunkEmbedding(compute.encoder, chunks, int(p.chunk_chars), nbytes, compute.clock)
    assert compute.model is not None
    if spec.reuse == "prefix":
        return None
    return BlockPrefill(compute.model, spec.block_tokens, compute.clock)


__all__ = ["SEEDED_NOTE", "Compute", "birth_source", "prepare_compute"]
