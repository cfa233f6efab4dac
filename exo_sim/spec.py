"""The validated, resolved form of a config: tiers with byte, block and token capacities derived.

:func:`build_spec` is the one place where a composed config is checked beyond its types and turned
into the numbers every clock (replay, SimPy model, runtime) uses. Every problem is refused with a
:class:`~exo_sim.errors.ConfigError` naming the key, before any work starts. Capacities in blocks and
tokens are always derived from bytes and the codec's exact block size, never typed (except a tier
given ``capacity_blocks`` for libCacheSim-style experiments, whose bytes are then derived instead).

A tier's blocks are what its slab holds within its bytes, by the medium's own layout
(:func:`slab_bytes`, used by the runtime's stores too, so the plan and the runtime agree on blocks per
tier by construction): a memory slab packs blocks end to end, but a ``file`` slab gives each block a
whole number of :data:`FILE_ROW_BYTES` rows (``O_DIRECT`` moves only aligned rows) and keeps
copy-on-write spare rows (``runtime.file_spare_fraction``, at least :data:`FILE_SPARE_SLOTS_MIN`), so an
8 GiB file tier holds fewer blocks than 8 GiB / block bytes, and the spec's notes say how many.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from exo_sim.architecture import WEIGHT_DTYPES, architecture_of, architecture_problem
from exo_sim.codecs import CODECS, encoded_bytes
from exo_sim.config import CodecMixConfig, PayloadConfig
from exo_sim.errors import ConfigError
from exo_sim.kv_budget import (
    KvBudget,
    WeightsDoNotFit,
    describe_options,
    fit_options,
    gpu_of,
    kv_budget,
    min_kv_tokens,
)
from exo_sim.node import check_node
from exo_sim.payloads import PAYLOAD_KINDS, BlockContent, block_content, kv_heads_per_rank
from exo_sim.policies import policy_names
from exo_sim.units import resolve_sizes

MEDIA = ("cuda", "pinned", "shm", "ram", "file")
"""Storage media a tier may use; ``cuda`` and ``pinned`` need a GPU in the runtime."""

MODES = ("exclusive", "write_through")

FILE_ROW_BYTES = 4096
"""A ``file`` tier's slot is a whole number of these rows: ``O_DIRECT`` reads and writes only whole,
aligned rows, so a block's padding to the next row is disk the tier spends."""
FILE_SPARE_SLOTS_MIN = 8
"""Fewest copy-on-write spare slots a ``file`` tier keeps (a freed slot is reused only after a manifest
commit; see ``exo_runtime.stores.file``)."""
DEFAULT_FILE_SPARE_FRACTION = 0.05
"""``runtime.file_spare_fraction`` when a config has no ``runtime`` section."""


def row_bytes(medium: str, block_bytes: int) -> int:
    """Bytes one slot of a ``medium`` slab takes: the block, rounded up to whole rows for ``file``."""
    if medium == "file":
        return -(-block_bytes // FILE_ROW_BYTES) * FILE_ROW_BYTES
    return block_bytes


def spare_slots(medium: str, capacity_blocks: int, spare_fraction: float) -> int:
    """Slots a ``medium`` slab keeps beyond its ``capacity_blocks`` (copy-on-write spares, ``file`` only)."""
    if medium != "file":
        return 0
    return max(FILE_SPARE_SLOTS_MIN, math.ceil(capacity_blocks * spare_fraction))


def slab_slots(medium: str, capacity_blocks: int, spare_fraction: float) -> int:
    """Slots of the slab of a ``medium`` tier holding ``capacity_blocks`` blocks (spares included)."""
    return capacity_blocks + spare_slots(medium, capacity_blocks, spare_fraction)


def slab_bytes(medium: str, block_bytes: int, capacity_blocks: int, spare_fraction: float) -> int:
    """Bytes of that slab: every slot, padding and spares included (a file tier's size on disk)."""
    return slab_slots(medium, capacity_blocks, spare_fraction) * row_bytes(medium, block_bytes)


def blocks_in(medium: str, capacity_bytes: int, block_bytes: int, spare_fraction: float) -> int:
    """The most blocks a ``medium`` slab of at most ``capacity_bytes`` bytes holds (0 if not one)."""
    rows = capacity_bytes // row_bytes(medium, block_bytes)
    if medium != "file":
        return rows
    n = max(0, min(rows - FILE_SPARE_SLOTS_MIN, math.floor(rows / (1.0 + spare_fraction))))
    while n > 0 and slab_slots(medium, n, spare_fraction) > rows:
        n -= 1
    while slab_slots(medium, n + 1, spare_fraction) <= rows:
        n += 1
    return n


def file_spare_fraction(cfg: Any) -> float:
    """``runtime.file_spare_fraction`` of a root config (the default when it has no ``runtime``)."""
    runtime = getattr(cfg, "runtime", None)
    value = getattr(runtime, "file_spare_fraction", None) if runtime is not None else None
    return DEFAULT_FILE_SPARE_FRACTION if value is None else float(value)

Locator = Callable[[str], "str | None"]
"""Maps a dotted config key to where its value came from (file and line, or the command line)."""


@dataclass(frozen=True)
class TierSpec:
    """One tier, resolved.

    ``high_blocks`` is the occupancy a new block may not push the tier over (eviction starts);
    ``low_blocks`` the occupancy eviction brings it down to. A tier with ``high_blocks == 0`` cannot
    hold even one block under its watermark: it is bypassed (``usable`` is false) and says so.

    ``capacity_bytes`` is the device's (or the profile's) bytes. A ``cuda`` tier serving a
    ``kv_cache`` payload also holds the model: ``kv_budget_bytes`` is what is left for the KV cache
    (``capacity_bytes x hardware.gpu.memory_utilization - weight_bytes - workspace_bytes``, see
    :mod:`exo_sim.kv_budget`) and sizes ``capacity_blocks``; ``None`` when nothing is deducted.
    """

    index: int
    name: str
    medium: str
    codec: str
    policy: str
    capacity_bytes: int
    block_bytes: int
    block_tokens: int
    capacity_blocks: int
    high_blocks: int
    low_blocks: int
    kv_budget_bytes: int | None = None
    weight_bytes: int = 0
    workspace_bytes: int = 0

    @property
    def capacity_tokens(self) -> int:
        """Tokens the tier holds when full (whole blocks only)."""
        return self.capacity_blocks * self.block_tokens

    @property
    def usable(self) -> bool:
        """Whether the tier can hold at least one block under its high watermark."""
        return self.high_blocks > 0


@dataclass(frozen=True)
class LinkSpec:
    """A link between tiers ``src`` and ``dst`` (indices), in SI units.

    ``reverse_*`` are the ``dst`` -> ``src`` direction's figures of a duplex link (the forward ones
    when the profile gives none).
    """

    src: int
    dst: int
    bandwidth_bytes_per_s: float
    latency_s: float
    duplex: bool
    channels: int
    reverse_bandwidth_bytes_per_s: float | None = None
    reverse_latency_s: float | None = None
    block_s: float = 0.0
    reverse_block_s: float | None = None

    def reverse(self) -> LinkSpec:
        """The ``dst`` -> ``src`` direction as a link of its own (same channels)."""
        return LinkSpec(
            src=self.dst,
            dst=self.src,
            bandwidth_bytes_per_s=self.reverse_bandwidth_bytes_per_s or self.bandwidth_bytes_per_s,
            latency_s=self.reverse_latency_s or self.latency_s,
            duplex=self.duplex,
            channels=self.channels,
            block_s=self.block_s if self.reverse_block_s is None else self.reverse_block_s,
        )


@dataclass(frozen=True)
class Spec:
    """A whole resolved hierarchy: what every clock needs, with nothing left to interpret."""

    hardware: str
    payload: str
    mode: str
    block_tokens: int
    content: BlockContent
    tiers: tuple[TierSpec, ...]
    links: tuple[LinkSpec, ...]
    codec_throughput_bytes_per_s: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    reuse: str = "block"
    """``prefix`` or ``block``: how a request reuses cached blocks (see :mod:`exo_sim.driver`)."""

    def tier(self, name: str) -> TierSpec:
        """The tier called ``name``."""
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(name)


def _fail(locate: Locator | None, key: str, problem: str) -> ConfigError:
    return ConfigError(key, problem, locate(key) if locate else None)


def _check_payload(p: PayloadConfig, block_tokens: int, locate: Locator | None) -> None:
    if p.kind not in PAYLOAD_KINDS:
        raise _fail(locate, "payload.kind", f"is {p.kind!r}, not one of {', '.join(PAYLOAD_KINDS)}")
    if p.kind == "kv_cache":
        fields = ("layers", "kv_heads", "head_dim", "tensor_parallel")
    else:
        fields = ("chunk_chars", "text_bytes_per_char", "tokens_per_chunk", "embedding_dim")
    for name in fields:
        value = getattr(p, name)
        if value <= 0:
            raise _fail(locate, f"payload.{name}", f"must be > 0 for a {p.kind} payload, got {value}")
    if p.kind == "kv_cache":
        _check_architecture(p, locate)
    if p.kind == "rag_chunk" and block_tokens % p.tokens_per_chunk:
        raise _fail(
            locate,
            "block_tokens",
            f"is {block_tokens}, not a multiple of payload.tokens_per_chunk ({p.tokens_per_chunk}): "
            "a rag_chunk block holds whole chunks",
        )


def _check_architecture(p: PayloadConfig, locate: Locator | None) -> None:
    """A kv_cache payload's weight precision, tensor parallelism and architecture agree."""
    if p.weight_dtype not in WEIGHT_DTYPES:
        raise _fail(locate, "payload.weight_dtype",
                    f"is {p.weight_dtype!r}, not a known weight precision ({', '.join(WEIGHT_DTYPES)})")
    if p.weight_group_size <= 0:
        raise _fail(locate, "payload.weight_group_size", f"must be > 0, got {p.weight_group_size}")
    tp, kv = int(p.tensor_parallel), int(p.kv_heads)
    if kv % tp and tp % kv:
        raise _fail(
            locate,
            "payload.tensor_parallel",
            f"is {tp}, which neither divides kv_heads ({kv}) nor is a multiple of it; KV heads are split "
            "evenly over the ranks, or replicated when there are more ranks than heads",
        )
    declared = getattr(p, "bytes_per_token", None)
    derived = 2 * 2 * int(p.layers) * kv_heads_per_rank(p) * int(p.head_dim)
    if declared is not None and int(declared) != derived:
        raise _fail(
            locate,
            "payload.bytes_per_token",
            f"is {declared}, but the architecture gives 2 x layers x kv_heads per rank x head_dim x 2 bytes "
            f"= 2 x {p.layers} x {kv_heads_per_rank(p)} x {p.head_dim} x 2 = {derived}",
        )
    if int(getattr(p, "hidden_size", 0) or 0) < 0:
        raise _fail(locate, "payload.hidden_size", f"must be > 0 (or 0: KV shape only), got {p.hidden_size}")
    arch = architecture_of(p)
    if arch is not None:
        problem = architecture_problem(arch)
        if problem is not None:
            raise _fail(locate, f"payload.{problem[0]}", problem[1])


def _check_gpu(gpu: Any, locate: Locator | None) -> None:
    if not 0 < float(gpu.memory_utilization) <= 1:
        raise _fail(locate, "hardware.gpu.memory_utilization", f"must be in (0, 1], got {gpu.memory_utilization}")
    if gpu.workspace_bytes is not None and int(gpu.workspace_bytes) < 0:
        raise _fail(locate, "hardware.gpu.workspace_bytes",
                    f"must be >= 0 (or null: derived), got {gpu.workspace_bytes}")
    for name in ("max_num_batched_tokens", "max_num_seqs"):
        if int(getattr(gpu, name)) <= 0:
            raise _fail(locate, f"hardware.gpu.{name}", f"must be > 0, got {getattr(gpu, name)}")


def _check_codec_mix(mix: CodecMixConfig, locate: Locator | None) -> None:
    known = ", ".join(CODECS)
    if mix.default not in CODECS:
        raise _fail(locate, "codec.default", f"is {mix.default!r}, not a known codec ({known})")
    for tier, codec in mix.per_tier.items():
        if codec not in CODECS:
            raise _fail(locate, f"codec.per_tier.{tier}", f"is {codec!r}, not a known codec ({known})")
    for name in ("int8_group_size", "int4_group_size"):
        if getattr(mix, name) <= 0:
            raise _fail(locate, f"codec.{name}", f"must be > 0, got {getattr(mix, name)}")
    if mix.scale_bytes < 0:
        raise _fail(locate, "codec.scale_bytes", f"must be >= 0, got {mix.scale_bytes}")


def _check_watermarks(high: float, low: float, key: str, locate: Locator | None) -> None:
    if not (0 < low <= high <= 1):
        raise _fail(
            locate,
            f"{key}.low_watermark" if not 0 < low or low > high else f"{key}.high_watermark",
            f"gives watermarks low={low}, high={high}; they must satisfy 0 < low <= high <= 1",
        )


def _check_budget(
    budget: KvBudget, index: int, tier: str, payload: Any, gpu: Any, block_tokens: int, codec: str,
    mix: CodecMixConfig, bb: int, locate: Locator | None,
) -> None:
    """Refuse a GPU tier whose KV budget holds less than one batch, naming what would fit."""
    need = min_kv_tokens(gpu, block_tokens)
    if budget.kv_tokens(bb, block_tokens) >= need:
        return
    options = fit_options(budget.device_bytes, gpu, payload, block_tokens, codec, mix)
    key = f"hardware.tiers[{index}].capacity_bytes"
    raise WeightsDoNotFit(
        key,
        f"leaves tier {tier} no room for {payload.name}'s KV cache ({budget.arithmetic()}, less than "
        f"one batch of hardware.gpu.max_num_batched_tokens={gpu.max_num_batched_tokens} tokens); "
        f"what would fit: {describe_options(options)}",
        locate(key) if locate else None,
        tier,
        index,
        budget,
        options,
    )


def block_bytes(content: BlockContent, codec: str, mix: CodecMixConfig) -> int:
    """Exact bytes of one block in ``codec``: encoded elements (scales included) plus raw bytes."""
    return encoded_bytes(codec, content.elements, mix) + content.raw_bytes


def build_spec(cfg: Any, locate: Locator | None = None) -> Spec:
    """Validate a composed root config and resolve it into a :class:`Spec`.

    Args:
        cfg: the root config (an OmegaConf ``DictConfig`` or an :class:`~exo_sim.config.ExoConfig`).
        locate: optional function naming where a key's value came from, for error messages.

    Raises:
        ConfigError: naming the first invalid key.

    """
    check_node(cfg, locate)  # a one-line node (gpu=...) first: its keys build hardware=node's tiers
    resolve_sizes(cfg, locate)  # byte fields written as sizes (80GB, 1TiB) become ints, once
    hw, payload, mix, pmix, hier = cfg.hardware, cfg.payload, cfg.codec, cfg.policy, cfg.hierarchy
    block_tokens = int(cfg.block_tokens)
    if block_tokens <= 0:
        raise _fail(locate, "block_tokens", f"must be > 0, got {block_tokens}")
    _check_payload(payload, block_tokens, locate)
    _check_codec_mix(mix, locate)
    policies = policy_names()
    for key, name in [("policy.default", pmix.default)] + [
        (f"policy.per_tier.{t}", p) for t, p in pmix.per_tier.items()
    ]:
        if name not in policies:
            raise _fail(locate, key, f"is {name!r}, not a known policy ({', '.join(policies)})")
    if hier.mode not in MODES:
        raise _fail(locate, "hierarchy.mode", f"is {hier.mode!r}, not one of {', '.join(MODES)}")
    _check_watermarks(float(hier.high_watermark), float(hier.low_watermark), "hierarchy", locate)
    if not hw.tiers:
        raise _fail(locate, "hardware.tiers", "is empty; a hierarchy needs at least one tier")
    gpu = gpu_of(hw)
    _check_gpu(gpu, locate)

    content = block_content(payload, block_tokens)
    names = [t.name for t in hw.tiers]
    notes: list[str] = []
    for group, mapping in (("codec", mix.per_tier), ("policy", pmix.per_tier)):
        for tier_name in mapping:
            if tier_name not in names:
                notes.append(
                    f"{group}.per_tier.{tier_name} is unused: hardware {hw.name} has no tier "
                    f"{tier_name!r} (tiers: {', '.join(names)})"
                )

    spare_fraction = file_spare_fraction(cfg)
    if any(t.medium == "file" for t in hw.tiers) and not 0 <= spare_fraction <= 1:
        raise _fail(locate, "runtime.file_spare_fraction", f"must be between 0 and 1, got {spare_fraction}")

    tiers: list[TierSpec] = []
    # GPU tiers' budgets, checked once every other key is: a typo elsewhere is named first
    budgets: list[tuple[KvBudget, int, str, str, int]] = []
    for i, t in enumerate(hw.tiers):
        key = f"hardware.tiers[{i}]"
        if names.count(t.name) > 1:
            raise _fail(locate, f"{key}.name", f"repeats the tier name {t.name!r}")
        if t.medium not in MEDIA:
            raise _fail(locate, f"{key}.medium", f"is {t.medium!r}, not one of {', '.join(MEDIA)}")
        codec = mix.per_tier.get(t.name, mix.default)
        policy = pmix.per_tier.get(t.name, pmix.default)
        bb = block_bytes(content, codec, mix)
        budget: KvBudget | None = None
        if (t.capacity_bytes is None) == (t.capacity_blocks is None):
            raise _fail(locate, f"{key}.capacity_bytes", "and capacity_blocks: give exactly one of them")
        if t.capacity_blocks is not None:
            if t.capacity_blocks <= 0:
                raise _fail(locate, f"{key}.capacity_blocks", f"must be > 0, got {t.capacity_blocks}")
            # a file tier's bytes are its slab's: rows and spares included
            cap_bytes = slab_bytes(t.medium, bb, int(t.capacity_blocks), spare_fraction)
        else:
            cap_bytes = int(t.capacity_bytes)
            if cap_bytes <= 0:
                raise _fail(locate, f"{key}.capacity_bytes", f"must be > 0, got {cap_bytes}")
            budget = kv_budget(cap_bytes, gpu, payload) if t.medium == "cuda" else None
            if budget is not None:
                budgets.append((budget, i, t.name, codec, bb))
                notes.append(f"{t.name}: {budget.arithmetic()} = {budget.kv_tokens(bb, block_tokens):,} "
                             f"tokens in {codec}")
            if cap_bytes < bb:
                raise _fail(
                    locate,
                    f"{key}.capacity_bytes",
                    f"is {cap_bytes} bytes, smaller than one block of {payload.name} in {codec} "
                    f"({bb} bytes at block_tokens={block_tokens})",
                )
        high = float(hier.high_watermark if t.high_watermark is None else t.high_watermark)
        low = float(hier.low_watermark if t.low_watermark is None else t.low_watermark)
        _check_watermarks(high, low, key, locate)
        if budget is not None:
            cap_blocks = max(0, budget.kv_budget_bytes) // bb
        elif t.capacity_blocks is not None:
            cap_blocks = int(t.capacity_blocks)
        else:
            cap_blocks = blocks_in(t.medium, cap_bytes, bb, spare_fraction)
        if t.medium == "file":
            rb, spares = row_bytes(t.medium, bb), spare_slots(t.medium, cap_blocks, spare_fraction)
            if cap_blocks == 0:
                raise _fail(
                    locate,
                    f"{key}.capacity_bytes",
                    f"is {cap_bytes} bytes, too small for one block of {payload.name} in {codec} in a file "
                    f"tier: its {rb}-byte row and {FILE_SPARE_SLOTS_MIN} copy-on-write spare rows take "
                    f"{(1 + FILE_SPARE_SLOTS_MIN) * rb} bytes",
                )
            notes.append(
                f"tier {t.name} (file): each {bb:,}-byte block takes a {rb:,}-byte row of its slab "
                f"(O_DIRECT moves whole {FILE_ROW_BYTES}-byte rows) and {spares:,} rows are copy-on-write "
                f"spares (runtime.file_spare_fraction={spare_fraction:g}, at least {FILE_SPARE_SLOTS_MIN}), so "
                f"its slab of {slab_bytes(t.medium, bb, cap_blocks, spare_fraction):,} bytes (capacity "
                f"{cap_bytes:,}) holds {cap_blocks:,} blocks"
                + ("" if t.capacity_blocks is not None else f", not {cap_bytes // bb:,}")
            )
        high_blocks = math.floor(high * cap_blocks + 1e-9)
        low_blocks = math.floor(low * cap_blocks + 1e-9)
        if high_blocks == 0:
            notes.append(
                f"tier {t.name} is bypassed: high_watermark {high} of {cap_blocks} blocks leaves room "
                "for no block"
            )
        tiers.append(
            TierSpec(
                index=i,
                name=t.name,
                medium=t.medium,
                codec=codec,
                policy=policy,
                capacity_bytes=cap_bytes,
                block_bytes=bb,
                block_tokens=block_tokens,
                capacity_blocks=cap_blocks,
                high_blocks=high_blocks,
                low_blocks=low_blocks,
                kv_budget_bytes=None if budget is None else budget.kv_budget_bytes,
                weight_bytes=0 if budget is None else budget.weight_bytes,
                workspace_bytes=0 if budget is None else budget.workspace_bytes,
            )
        )

    def check_budgets() -> None:
        for budget, i, name, codec, bb in budgets:
            _check_budget(budget, i, name, payload, gpu, block_tokens, codec, mix, bb, locate)

    if not any(t.usable for t in tiers):
        check_budgets()  # the model's weights, if they are why
        raise _fail(locate, "hierarchy.high_watermark", "leaves no tier room for a single block")

    links: list[LinkSpec] = []
    for i, link in enumerate(hw.links):
        key = f"hardware.links[{i}]"
        for end in ("src", "dst"):
            if getattr(link, end) not in names:
                raise _fail(
                    locate,
                    f"{key}.{end}",
                    f"names tier {getattr(link, end)!r}, which hardware {hw.name} does not have "
                    f"(tiers: {', '.join(names)})",
                )
        if link.bandwidth_gbps <= 0:
            raise _fail(locate, f"{key}.bandwidth_gbps", f"must be > 0, got {link.bandwidth_gbps}")
        if link.latency_us <= 0:
            raise _fail(locate, f"{key}.latency_us", f"must be > 0, got {link.latency_us}")
        if link.channels < 1:
            raise _fail(locate, f"{key}.channels", f"must be >= 1, got {link.channels}")
        block_us = float(getattr(link, "block_us", 0.0))
        if not block_us >= 0:
            raise _fail(locate, f"{key}.block_us", f"must be >= 0, got {block_us}")
        reverse_block = getattr(link, "reverse_block_us", None)
        if reverse_block is not None and not float(reverse_block) >= 0:
            raise _fail(locate, f"{key}.reverse_block_us", f"must be >= 0 (or null: as block_us), got {reverse_block}")
        reverse_bw = getattr(link, "reverse_bandwidth_gbps", None)
        reverse_lat = getattr(link, "reverse_latency_us", None)
        if reverse_block is not None and not link.duplex:
            raise _fail(locate, f"{key}.reverse_block_us", "is set on a link that is not duplex; a simplex link "
                        "carries both directions on one resource at one speed")
        for name, value in (("reverse_bandwidth_gbps", reverse_bw), ("reverse_latency_us", reverse_lat)):
            if value is None:
                continue
            if not float(value) > 0:
                raise _fail(locate, f"{key}.{name}", f"must be > 0 (or null: as forward), got {value}")
            if not link.duplex:
                raise _fail(locate, f"{key}.{name}", "is set on a link that is not duplex; a simplex link "
                            "carries both directions on one resource at one speed")
        links.append(
            LinkSpec(
                src=names.index(link.src),
                dst=names.index(link.dst),
                bandwidth_bytes_per_s=float(link.bandwidth_gbps) * 1e9,
                latency_s=float(link.latency_us) * 1e-6,
                duplex=bool(link.duplex),
                channels=int(link.channels),
                reverse_bandwidth_bytes_per_s=None if reverse_bw is None else float(reverse_bw) * 1e9,
                reverse_latency_s=None if reverse_lat is None else float(reverse_lat) * 1e-6,
                block_s=block_us * 1e-6,
                reverse_block_s=None if reverse_block is None else float(reverse_block) * 1e-6,
            )
        )

    throughput: dict[str, tuple[float, float]] = {}
    for codec_name, tp in hw.codec_throughput.items():
        key = f"hardware.codec_throughput.{codec_name}"
        if codec_name not in CODECS:
            raise _fail(locate, key, f"names {codec_name!r}, not a known codec ({', '.join(CODECS)})")
        for part in ("encode_gbps", "decode_gbps"):
            if getattr(tp, part) <= 0:
                raise _fail(locate, f"{key}.{part}", f"must be > 0, got {getattr(tp, part)}")
        throughput[codec_name] = (float(tp.encode_gbps) * 1e9, float(tp.decode_gbps) * 1e9)
    check_budgets()

    return Spec(
        hardware=str(hw.name),
        payload=str(payload.name),
        mode=str(hier.mode),
        block_tokens=block_tokens,
        content=content,
        tiers=tuple(tiers),
        links=tuple(links),
        codec_throughput_bytes_per_s=throughput,
        notes=tuple(notes),
    )
