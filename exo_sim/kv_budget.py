"""The KV budget of a GPU tier: what a serving engine leaves for the KV cache on one GPU.

A ``cuda`` tier's ``capacity_bytes`` is one GPU's memory (one tensor-parallel rank). A serving engine
such as vLLM takes ``memory_utilization`` of it, loads the model's weights (one rank's share, at their
precision: :func:`exo_sim.architecture.weight_bytes_per_rank`), runs a profiling forward pass whose
peak activations it reserves as workspace, and gives the rest to its KV pool::

    kv_budget_bytes = capacity_bytes x memory_utilization - weight_bytes - workspace_bytes

A tier must hold at least one batch (``hardware.gpu.max_num_batched_tokens`` tokens, in whole blocks)
of KV besides; :func:`fit_options` lists what would (weights at a lower precision, more
tensor-parallel ranks, a larger GPU) with each option's KV budget in tokens.

Deductions apply to ``kv_cache`` payloads only (a ``rag_chunk`` store has no model on the GPU), and
not at all when ``hardware.gpu.kv_pool`` says the tier's bytes are a KV pool already.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from exo_sim.architecture import (
    WEIGHT_DTYPES,
    Architecture,
    architecture_of,
    architecture_problem,
    weight_bytes_per_rank,
)
from exo_sim.codecs import encoded_bytes
from exo_sim.config import GpuConfig
from exo_sim.errors import ConfigError

GB = 1e9

LOWER_PRECISIONS = ("fp8", "int8", "int4")
"""Weight precisions :func:`fit_options` tries, most precise first."""

_MAX_TP = 64


@dataclass(frozen=True)
class KvBudget:
    """How one GPU's memory is shared between the model and its KV cache (bytes, one rank).

    ``kv_budget_bytes`` may be negative: the weights and workspace alone do not fit.
    """

    device_bytes: int
    memory_utilization: float
    weight_bytes: int
    workspace_bytes: int
    weight_dtype: str | None  # None: no architecture, so no weights counted
    tensor_parallel: int = 1

    @property
    def usable_bytes(self) -> int:
        """The engine's share of the device: ``device_bytes x memory_utilization``, floored."""
        return math.floor(self.device_bytes * self.memory_utilization)

    @property
    def kv_budget_bytes(self) -> int:
        """Bytes left for the KV cache (negative when the weights and workspace do not fit)."""
        return self.usable_bytes - self.weight_bytes - self.workspace_bytes

    def kv_tokens(self, block_bytes: int, block_tokens: int) -> int:
        """Tokens of KV the budget holds in whole blocks of ``block_bytes`` (0 when it is negative)."""
        return max(0, self.kv_budget_bytes) // block_bytes * block_tokens

    def arithmetic(self) -> str:
        """The budget as one line of arithmetic (GiB of device, GB of the rest)."""
        weights = (
            f"{self.weight_bytes / GB:.2f} GB {self.weight_dtype} weights"
            if self.weight_dtype is not None
            else "no weights (payload has no architecture)"
        )
        tp = f" (TP={self.tensor_parallel}, per rank)" if self.tensor_parallel > 1 else ""
        return (
            f"{self.device_bytes / 2**30:g} GiB x {self.memory_utilization:.2f} - {weights} - "
            f"{self.workspace_bytes / GB:.2f} GB workspace = {self.kv_budget_bytes / GB:.2f} GB of KV{tp}"
        )


@dataclass(frozen=True)
class FitOption:
    """One way to make the weights fit: the config overrides, the budget and the KV tokens it holds.

    ``on_given_hardware``: whether it needs nothing but the profile's own GPU (a lower precision);
    more ranks need more GPUs, a larger GPU another profile.
    """

    label: str
    overrides: tuple[tuple[str, Any], ...]  # (dotted config key, value) pairs; none for another GPU
    budget: KvBudget
    kv_tokens: int
    on_given_hardware: bool

    def override_args(self) -> list[str]:
        """The overrides as command-line arguments (``payload.weight_dtype=int4``)."""
        return [f"{k}={v}" for k, v in self.overrides]


class WeightsDoNotFit(ConfigError):
    """A ``cuda`` tier's KV budget holds less than one batch: the model does not fit beside its KV.

    Carries the tier's name and index, its :class:`KvBudget` and the :func:`fit_options`, so that a
    caller (``exo-plan``) can continue with one of them.
    """

    def __init__(
        self, key: str, problem: str, where: str | None, tier: str, index: int, budget: KvBudget,
        options: list[FitOption],
    ) -> None:
        super().__init__(key, problem, where)
        self.tier = tier
        self.index = index
        self.budget = budget
        self.options = options


def gpu_of(hw: Any) -> GpuConfig:
    """The hardware profile's ``gpu`` section (defaults when a hand-built profile has none)."""
    gpu = getattr(hw, "gpu", None)
    return GpuConfig() if gpu is None else gpu


def workspace_bytes_per_rank(arch: Architecture | None, gpu: Any) -> int:
    """Activation workspace one rank reserves (``gpu.workspace_bytes``, or derived from ``arch``).

    Derived as vLLM's profiling pass peaks: a forward pass over ``max_num_batched_tokens`` tokens
    holds the residual, the normed input, the MLP's gate/up output and its activated output at once,
    2 bytes an element (``tokens x (2 x hidden + 3 x intermediate / tp) x 2``), plus float32 logits
    for ``max_num_seqs`` sequences (``max_num_seqs x vocab x 4``). 0 without an architecture.
    """
    if gpu.workspace_bytes is not None:
        return int(gpu.workspace_bytes)
    if arch is None:
        return 0
    tokens = int(gpu.max_num_batched_tokens)
    per_token = 2 * arch.hidden_size + 3 * (arch.intermediate_size // arch.tensor_parallel)
    return tokens * per_token * 2 + int(gpu.max_num_seqs) * arch.vocab_size * 4


def kv_budget(device_bytes: int, gpu: Any, payload: Any) -> KvBudget | None:
    """The KV budget of a ``cuda`` tier of ``device_bytes``; ``None`` when nothing is deducted.

    Nothing is deducted for a ``rag_chunk`` payload or when ``gpu.kv_pool`` is set. Assumes the
    payload and ``gpu`` were validated (:func:`exo_sim.spec.build_spec`).
    """
    if bool(gpu.kv_pool) or str(payload.kind) != "kv_cache":
        return None
    arch = architecture_of(payload)
    dtype = str(payload.weight_dtype)
    weights = 0
    if arch is not None and bool(gpu.weights_on_gpu):
        weights = weight_bytes_per_rank(arch, dtype, int(payload.weight_group_size))
    return KvBudget(
        device_bytes=int(device_bytes),
        memory_utilization=float(gpu.memory_utilization),
        weight_bytes=weights,
        workspace_bytes=workspace_bytes_per_rank(arch, gpu),
        weight_dtype=dtype if arch is not None and bool(gpu.weights_on_gpu) else None,
        tensor_parallel=int(payload.tensor_parallel),
    )


def min_kv_tokens(gpu: Any, block_tokens: int) -> int:
    """KV tokens a GPU tier must hold besides weights and workspace: one batch, in whole blocks."""
    return -(-int(gpu.max_num_batched_tokens) // block_tokens) * block_tokens


def _block_bytes(arch: Architecture, block_tokens: int, codec: str, mix: Any) -> int:
    return encoded_bytes(codec, arch.kv_elements_per_token_per_rank() * block_tokens, mix)


def fit_options(
    device_bytes: int, gpu: Any, payload: Any, block_tokens: int, codec: str, mix: Any
) -> list[FitOption]:
    """Ways to make a ``kv_cache`` payload's weights fit one GPU with room for one batch of KV.

    In order: each lower weight precision than the payload's (``fp8``, ``int8``, ``int4``) that fits
    on this GPU; the fewest tensor-parallel ranks that fit at the payload's precision; the smallest
    GPU, in whole GB, that fits at the payload's precision and tensor parallelism. Each with its KV
    budget in tokens of ``codec`` blocks. Empty without an architecture (nothing to rescale).
    """
    arch = architecture_of(payload)
    if arch is None:
        return []
    need = min_kv_tokens(gpu, block_tokens)
    dtype, group = str(payload.weight_dtype), int(payload.weight_group_size)
    options: list[FitOption] = []

    def budget(a: Architecture, wd: str, device: int) -> KvBudget:
        weights = weight_bytes_per_rank(a, wd, group) if bool(gpu.weights_on_gpu) else 0
        return KvBudget(device, float(gpu.memory_utilization), weights, workspace_bytes_per_rank(a, gpu),
                        wd, a.tensor_parallel)

    base_weights = weight_bytes_per_rank(arch, dtype, group)
    for wd in LOWER_PRECISIONS:
        if weight_bytes_per_rank(arch, wd, group) >= base_weights:
            continue
        b = budget(arch, wd, device_bytes)
        tokens = b.kv_tokens(_block_bytes(arch, block_tokens, codec, mix), block_tokens)
        if tokens >= need:
            options.append(FitOption(f"weights in {wd}", (("payload.weight_dtype", wd),), b, tokens, True))
    for tp in range(arch.tensor_parallel + 1, _MAX_TP + 1):
        a = replace(arch, tensor_parallel=tp)
        if architecture_problem(a) is not None:
            continue
        b = budget(a, dtype, device_bytes)
        tokens = b.kv_tokens(_block_bytes(a, block_tokens, codec, mix), block_tokens)
        if tokens >= need:
            options.append(
                FitOption(f"TP={tp} ({tp} GPUs like this one)", (("payload.tensor_parallel", tp),), b, tokens,
                          False)
            )
            break
    bb = _block_bytes(arch, block_tokens, codec, mix)
    fixed = budget(arch, dtype, 0)
    needed = fixed.weight_bytes + fixed.workspace_bytes + need // block_tokens * bb
    gb = math.ceil(needed / float(gpu.memory_utilization) / GB)
    b = budget(arch, dtype, int(gb * GB))
    options.append(FitOption(f"a GPU with >= {gb} GB", (), b, b.kv_tokens(bb, block_tokens), False))
    return options


def describe_options(options: list[FitOption]) -> str:
    """The options as one clause: ``weights in int4 (12,288 tokens of KV), ...``."""
    return "; ".join(f"{o.label} ({o.kv_tokens:,} tokens of KV)" for o in options)


__all__ = [
    "WEIGHT_DTYPES",
    "FitOption",
    "KvBudget",
    "WeightsDoNotFit",
    "describe_options",
    "fit_options",
    "gpu_of",
    "kv_budget",
    "min_kv_tokens",
    "workspace_bytes_per_rank",
]
