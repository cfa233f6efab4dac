"""Can this host run the engine's model? Checked before the model is built, refused in one sentence.

Two estimates, both for one tensor-parallel rank at the compute dtype (the engine holds its weights
at the dtype it computes in; it has no fp8/int8/int4 kernels):

* **Memory**: the weights (``arch.params_per_rank()`` x the dtype's bytes) plus an estimate of one
  forward pass's workspace over a block (residual, q/k/v, MLP activations, the block's new KV),
  against the memory there is now — on the CPU psutil's available memory capped by the cgroup's
  room (:func:`exo_runtime.fit.cgroup_room_bytes`), on a GPU the free device memory.
* **Time**: prefilling one block of ``block_tokens`` tokens with no context costs
  ``2 x n x`` (the layers' matmul weights) ``+ 4 x layers x heads x head_dim x n(n+1)/2`` (causal
  attention) ``+ 2 x`` lm_head's weights (the last token's logits only) FLOPs; at a matmul rate
  measured here (:func:`measure_matmul_flops`, with torch's current thread count — pin threads
  first, as the runtime does) or given. Over ``max_block_prefill_s`` (10 s by default: a trace
  prefills thousands of blocks, so that is hours) the model is refused.

A refusal raises :class:`~exo_runtime.errors.MachineError` (an ``ExoError``: exit status 2) whose
message names the payload to use instead (:data:`FALLBACK_PAYLOAD`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil
import torch

from exo_runtime.errors import MachineError
from exo_runtime.fit import cgroup_room_bytes
from exo_sim.architecture import Architecture

FALLBACK_PAYLOAD = "tiny_llama_kv"
"""The payload every host can run: the one a refusal points to."""

MAX_BLOCK_PREFILL_S = 10.0
"""Default limit on the estimated prefill time of one block."""

GiB = 1024**3


@dataclass(frozen=True)
class EngineFit:
    """What :func:`check_engine_fits` estimated (bytes, seconds, FLOP/s).

    Attributes:
        weights_bytes: the weights at the compute dtype.
        workspace_bytes: one forward pass's activations over a block (an estimate).
        available_bytes: memory available now on the compute device.
        block_flops: FLOPs of prefilling one block with no context.
        flops_per_s: the matmul rate used.
        flops_basis: where that rate comes from (``"measured, 1 thread"``, ``"given"``).
        block_prefill_s: ``block_flops / flops_per_s``.

    """

    weights_bytes: int
    workspace_bytes: int
    available_bytes: int
    block_flops: float
    flops_per_s: float
    flops_basis: str
    block_prefill_s: float


def block_prefill_flops(arch: Architecture, block_tokens: int) -> float:
    """FLOPs of prefilling ``block_tokens`` tokens with no context on one rank (see the module doc)."""
    n = block_tokens
    lm_head = -(-arch.vocab_size // arch.tensor_parallel) * arch.hidden_size
    layers = arch.matmul_params_per_rank() - lm_head
    attention = 4.0 * arch.layers * arch.heads_per_rank() * arch.head_dim * n * (n + 1) / 2
    return 2.0 * n * layers + attention + 2.0 * lm_head


def workspace_bytes(arch: Architecture, block_tokens: int, dtype: torch.dtype) -> int:
    """An estimate of one forward pass's activations over a block, in bytes, at ``dtype``."""
    elem = torch.empty(0, dtype=dtype).element_size()
    h = arch.hidden_size
    qkv = (arch.heads_per_rank() + 2 * arch.kv_heads_per_rank()) * arch.head_dim
    mlp = 3 * (arch.intermediate_size // arch.tensor_parallel)
    per_token = 3 * h + qkv + mlp + arch.kv_elements_per_token_per_rank()
    return block_tokens * per_token * elem + 4 * arch.vocab_size


def measure_matmul_flops(device: torch.device | str, dtype: torch.dtype, size: int = 1024, repeats: int = 3) -> float:
    """FLOP/s of a ``size x size x size`` matmul at ``dtype`` on ``device``: the best of ``repeats``, after one warm-up.

    On the CPU it uses torch's current thread count (``torch.get_num_threads()``).
    """
    dev = torch.device(device)
    a = torch.randn((size, size), device=dev).to(dtype)
    b = torch.randn((size, size), device=dev).to(dtype)
    best = float("inf")
    for i in range(repeats + 1):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        torch.mm(a, b)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best


def available_bytes(device: torch.device | str) -> int:
    """Memory available now on ``device``: free GPU memory, or host memory (psutil, cgroup-capped)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    room = int(psutil.virtual_memory().available)
    cgroup = cgroup_room_bytes()
    return room if cgroup is None else min(room, cgroup)


def check_engine_fits(
    arch: Architecture,
    dtype: torch.dtype,
    device: torch.device | str,
    *,
    payload_name: str,
    block_tokens: int = 512,
    flops_per_s: float | None = None,
    available: int | None = None,
    max_block_prefill_s: float = MAX_BLOCK_PREFILL_S,
) -> EngineFit:
    """Refuse a model that cannot fit in memory or would take hours on this host; else the estimates.

    Args:
        arch: the payload's architecture.
        dtype: the compute dtype (:func:`~exo_runtime.engine.model.default_compute_dtype`).
        device: the compute device (``"cpu"``, ``"cuda"``).
        payload_name: the payload's name, for the message.
        block_tokens: tokens per block (the unit prefilled and timed).
        flops_per_s: the device's matmul rate; measured here when ``None``.
        available: bytes available; measured here when ``None``.
        max_block_prefill_s: the limit on one block's estimated prefill time.

    Raises:
        MachineError: when the weights and workspace exceed the available memory, or one block's
            prefill would exceed ``max_block_prefill_s`` (one sentence, naming :data:`FALLBACK_PAYLOAD`).

    """
    dev = torch.device(device)
    elem = torch.empty(0, dtype=dtype).element_size()
    weights = arch.params_per_rank() * elem
    workspace = workspace_bytes(arch, block_tokens, dtype)
    room = available_bytes(dev) if available is None else int(available)
    if flops_per_s is None:
        rate = measure_matmul_flops(dev, dtype)
        threads = torch.get_num_threads()
        basis = "measured" + (f", {threads} thread{'s' if threads > 1 else ''}" if dev.type == "cpu" else "")
    else:
        rate, basis = float(flops_per_s), "given"
    flops = block_prefill_flops(arch, block_tokens)
    block_s = flops / rate
    fit = EngineFit(weights, workspace, room, flops, rate, basis, block_s)

    where = "GPU" if dev.type == "cuda" else "CPU"
    dtype_name = str(dtype).removeprefix("torch.")
    reasons = []
    if weights + workspace > room:
        reasons.append(
            f"its weights take {weights / GiB:.2f} GiB at {dtype_name} (plus {workspace / GiB:.2f} GiB of "
            f"workspace) with {room / GiB:.2f} GiB available"
        )
    if block_s > max_block_prefill_s:
        reasons.append(
            f"one {block_tokens}-token block would take about {block_s:.0f} s to prefill at "
            f"{rate / 1e9:.0f} GFLOP/s ({basis}), over the {max_block_prefill_s:g} s limit"
        )
    if reasons:
        instead = (
            f"use payload={FALLBACK_PAYLOAD} on this host"
            if payload_name != FALLBACK_PAYLOAD
            else "this host cannot run the engine"
        )
        raise MachineError(
            f"payload {payload_name} is too large for the engine on this {where}: {' and '.join(reasons)}; {instead}."
        )
    return fit
