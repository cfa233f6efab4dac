"""Typed configuration schema: one dataclass per config group, stored in Hydra's ConfigStore.

YAML files under ``conf/`` only choose and override; each opens with ``defaults: [base_<group>]`` so
OmegaConf checks every key and type against the dataclasses here. Values that types alone cannot
check (positive capacities, ordered watermarks, known policies and codecs) are checked by
:func:`exo_sim.spec.build_spec` before any work starts.

Units are in the names: ``capacity_bytes``, ``bandwidth_gbps`` (10^9 bytes/s), ``latency_us``.
A byte count may be written as a size (``80GB`` = 80 x 10^9, ``80GiB`` = 80 x 2^30, ``1TiB``): such
fields are typed ``Any`` and read through :mod:`exo_sim.units`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TierConfig:
    """One memory tier. Give exactly one of ``capacity_bytes`` or ``capacity_blocks``.

    ``capacity_blocks`` exists for cache experiments sized in objects (libCacheSim style); planning
    profiles give bytes and let exo derive blocks and tokens. Watermarks left ``None`` take the
    hierarchy's.
    """

    name: str = MISSING
    medium: str = MISSING  # cuda | pinned | shm | ram | file
    capacity_bytes: Any = None  # bytes: an int or a size such as 80GB / 80GiB (exo_sim.units)
    capacity_blocks: Optional[int] = None
    high_watermark: Optional[float] = None
    low_watermark: Optional[float] = None


@dataclass
class LinkConfig:
    """A link between two tiers (named by tier name), used by the timed model.

    ``bandwidth_gbps`` and ``latency_us`` hold in each direction, unless a duplex link gives the
    ``dst`` -> ``src`` direction figures of its own (``reverse_bandwidth_gbps``, ``reverse_latency_us``:
    ``exo-calibrate`` measures each direction).
    """

    src: str = MISSING
    dst: str = MISSING
    bandwidth_gbps: float = MISSING  # 10^9 bytes/s, per direction
    latency_us: float = MISSING
    duplex: bool = True
    channels: int = 1
    reverse_bandwidth_gbps: Optional[float] = None  # dst -> src, duplex only; None: bandwidth_gbps
    reverse_latency_us: Optional[float] = None  # dst -> src, duplex only; None: latency_us
    block_us: float = 0.0  # per block carried (one I/O or copy call per block), on top of the latency
    reverse_block_us: Optional[float] = None  # dst -> src, duplex only; None: block_us


@dataclass
class CodecThroughputConfig:
    """Measured (or assumed) codec speed on a host, in GB/s of *uncompressed* data."""

    encode_gbps: float = MISSING
    decode_gbps: float = MISSING


@dataclass
class GpuConfig:
    """How a serving engine shares each ``cuda`` tier's memory (one GPU, one tensor-parallel rank).

    The KV budget of a ``cuda`` tier is ``capacity_bytes x memory_utilization - weights per rank -
    workspace``, as vLLM sizes its KV pool after a profiling run (``gpu_memory_utilization``).
    ``workspace_bytes`` ``None`` derives the activation workspace from the payload's architecture:
    the peak of one forward pass over ``max_num_batched_tokens`` tokens (residual, normed input,
    gate/up output and activated MLP output live at once, 2 bytes each:
    ``tokens x (2 x hidden + 3 x intermediate / tp) x 2``) plus float32 logits for
    ``max_num_seqs`` sequences (``max_num_seqs x vocab x 4``); the CUDA context, CUDA graphs and
    NCCL buffers are not counted (an assumption: give ``workspace_bytes`` to include them).
    ``weights_on_gpu: false`` holds the weights elsewhere (CPU offload): they are not deducted.
    ``kv_pool: true`` says the ``cuda`` tiers' ``capacity_bytes`` are a KV pool already (a scaled
    profile such as ``ci_small``): nothing is deducted.
    """

    memory_utilization: float = 0.9
    workspace_bytes: Any = None  # bytes or a size (exo_sim.units); None: derived
    max_num_batched_tokens: int = 2048
    max_num_seqs: int = 256
    weights_on_gpu: bool = True
    kv_pool: bool = False


@dataclass
class PrefillCoefficientsConfig:
    """Fitted prefill cost coefficients (``hardware.compute.prefill``), used as given (calibrated).

    ``prefill_s(n, p) = a_s + b_s_per_token x n + c_s_per_token_pair x n x (p + n/2) + d_s_per_token x p``
    for ``n`` new tokens after ``p`` cached ones (see :mod:`exo_sim.compute`). All ``None``: not
    calibrated (the cost is derived); once any is given, those left ``None`` are 0 (a term the fit
    dropped). ``payload`` names the payload (model) they were measured with (``None``: any); ``basis``
    says how.
    """

    a_s: Optional[float] = None
    b_s_per_token: Optional[float] = None
    c_s_per_token_pair: Optional[float] = None
    d_s_per_token: Optional[float] = None
    payload: Optional[str] = None
    basis: str = ""


@dataclass
class EncodeCoefficientsConfig:
    """Fitted encoder cost coefficients (``hardware.compute.encode``) for ``rag_chunk`` payloads, used as given.

    ``encode_s(k, t) = a_s x passes + b_s_per_token x k x t + c_s_per_token_pair x k x t^2`` for ``k``
    chunks of ``t`` tokens (see :mod:`exo_sim.encode_cost`). All ``None``: not calibrated (the cost is
    derived from the encoder's architecture and the peaks); once any is given, those left ``None`` are 0.
    ``payload`` names the payload they were measured with (``None``: any); ``residual_median`` and
    ``residual_max`` are the fit's relative errors on its own measurements; ``basis`` says how.
    """

    a_s: Optional[float] = None
    b_s_per_token: Optional[float] = None
    c_s_per_token_pair: Optional[float] = None
    payload: Optional[str] = None
    residual_median: Optional[float] = None
    residual_max: Optional[float] = None
    basis: str = ""


@dataclass
class ComputeConfig:
    """The device that prefills (``hardware.compute``), per tensor-parallel rank.

    ``peak_flops``: dense peak FLOP/s of one device at the compute precision (bf16 tensor cores on a
    GPU; fp32 FMA on a CPU); ``flops_efficiency`` the fraction of it a prefill reaches — an assumption.
    ``memory_bytes_per_s``: the device memory's bandwidth (HBM / GDDR / DRAM), ``memory_efficiency`` the
    fraction reached (an assumption). ``forward_overhead_s``: fixed cost of one forward pass (kernel
    launches, scheduling). ``compute_element_bytes``: bytes of one KV element as attention reads it (2:
    bf16/fp16; 4 on a CPU computing in fp32). ``prefill``: fitted coefficients, used as given instead
    of deriving them when any is set. ``encode``: the same for a ``rag_chunk`` payload's encoder
    (:class:`EncodeCoefficientsConfig`). A profile with neither ``peak_flops`` nor fitted coefficients
    has no compute model.
    """

    device: str = ""
    peak_flops: Optional[float] = None
    flops_efficiency: float = 0.5
    memory_bytes_per_s: Optional[float] = None
    memory_efficiency: float = 0.8
    forward_overhead_s: float = 0.0
    compute_element_bytes: int = 2
    prefill: PrefillCoefficientsConfig = field(default_factory=PrefillCoefficientsConfig)
    encode: EncodeCoefficientsConfig = field(default_factory=EncodeCoefficientsConfig)


@dataclass
class EngineConfig:
    """What a serving engine spends on a request besides its prefill (``hardware.engine``).

    See :mod:`exo_sim.engine_costs`: ``copies`` (``dma``: copy engines beside the compute; ``host``:
    the engine's own thread copies, before the prefill), scheduling per block, loading the cached
    prefix out of the top tier and storing the new KV into it (per block, and GB/s; ``null``: in place).
    ``calibrated`` is set by ``exo-calibrate`` on the figures it measured.
    """

    copies: str = "dma"
    request_us: float = 0.0
    schedule_us_per_block: float = 0.0
    kv_load_gbps: Optional[float] = None
    kv_load_block_us: float = 0.0
    kv_store_gbps: Optional[float] = None
    kv_store_block_us: float = 0.0
    finish_us: float = 0.0
    calibrated: bool = False


@dataclass
class HardwareConfig:
    """A hardware profile: tiers hot -> cold, the links between them and codec throughputs.

    ``gpu``: how a serving engine shares a ``cuda`` tier with the model (:class:`GpuConfig`).
    ``compute``: the device that prefills, for the prefill cost model (:class:`ComputeConfig`).
    ``engine``: what the serving engine spends besides the prefill (:class:`EngineConfig`).
    """

    name: str = MISSING
    description: str = ""
    tiers: list[TierConfig] = field(default_factory=list)
    links: list[LinkConfig] = field(default_factory=list)
    codec_throughput: dict[str, CodecThroughputConfig] = field(default_factory=dict)
    gpu: GpuConfig = field(default_factory=GpuConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)


@dataclass
class PayloadConfig:
    """What one token costs at full precision.

    ``kv_cache``: ``2 x layers x kv_heads x head_dim`` elements per token, split over
    ``tensor_parallel`` ranks by KV head (bytes are per rank). ``rag_chunk``: chunks of
    ``chunk_chars`` characters (``text_bytes_per_char`` bytes each, stored raw) covering
    ``tokens_per_chunk`` tokens, each with one ``embedding_dim`` vector (encoded by the codec).

    A ``kv_cache`` payload also gives its model's architecture (``hidden_size``,
    ``intermediate_size``, ``attention_heads``, ``vocab_size``, ``tied_embeddings``; see
    :mod:`exo_sim.architecture`): it sizes the weights a GPU tier holds besides the KV cache, stored
    at ``weight_dtype`` (``bf16``, ``fp16``, ``fp8``, ``int8``, ``int4``; int8/int4 with one scale —
    int4 also a zero point — per ``weight_group_size`` input elements). ``hidden_size: 0`` leaves the
    architecture out (KV shape only; no weights deducted). ``bytes_per_token``, if given, is checked
    against the derived per-rank KV bytes per token at 2 bytes an element.
    """

    name: str = MISSING
    kind: str = MISSING  # kv_cache | rag_chunk
    description: str = ""
    layers: int = 0
    kv_heads: int = 0
    head_dim: int = 0
    tensor_parallel: int = 1
    hidden_size: int = 0
    intermediate_size: int = 0
    attention_heads: int = 0
    vocab_size: int = 0
    tied_embeddings: bool = False
    weight_dtype: str = "bf16"  # bf16 | fp16 | fp8 | int8 | int4
    weight_group_size: int = 128
    bytes_per_token: Optional[int] = None  # optional declared KV bytes/token per rank at 16 bits
    chunk_chars: int = 1024
    text_bytes_per_char: int = 1
    tokens_per_chunk: int = 256
    embedding_dim: int = 384


@dataclass
class CodecMixConfig:
    """The codec each tier stores blocks in: one default, overridable per tier name.

    Integer codecs are symmetric per-group absmax with one scale of ``scale_bytes`` per group of
    ``int8_group_size`` / ``int4_group_size`` elements; the scales count in every byte figure.
    """

    name: str = MISSING
    default: str = "fp16"
    per_tier: dict[str, str] = field(default_factory=dict)
    int8_group_size: int = 128
    int4_group_size: int = 32
    scale_bytes: int = 2


@dataclass
class PolicyMixConfig:
    """The eviction policy of each tier: one default, overridable per tier name."""

    name: str = MISSING
    default: str = "lru"
    per_tier: dict[str, str] = field(default_factory=dict)


@dataclass
class HierarchyConfig:
    """How tiers cooperate.

    ``exclusive``: a block lives in exactly one tier; victims are demoted one tier down, and what falls
    off the last tier is dropped. ``write_through``: new blocks are also persisted to the last tier,
    so a clean victim of the tier above it is dropped without a write.
    A tier over ``high_watermark`` x its capacity evicts down to ``low_watermark`` x its capacity.
    ``reuse``: ``prefix`` (a serving engine's KV cache: a request reuses the longest cached prefix of
    its block chain, as vLLM counts it), ``block`` (each resident block is a hit on its own: RAG
    chunks) or ``auto`` (``prefix`` for a ``kv_cache`` payload on a workload of block chains, else
    ``block``).
    """

    mode: str = "exclusive"
    high_watermark: float = 1.0
    low_watermark: float = 1.0
    reuse: str = "auto"  # auto | prefix | block (exo_sim.driver)


@dataclass
class WorkloadConfig:
    """Fields every workload has; each workload module subclasses it with its own knobs.

    ``engines`` and ``engine`` split a fleet's trace: with ``engines = N > 1`` the run sees only
    engine ``engine``'s share (``0..N-1``), its requests routed by session or by cached prefix
    (:mod:`exo_sim.workloads.share`).
    """

    kind: str = MISSING
    engines: int = 1  # split the requests across this many engines (1: no split)
    engine: int = 0  # the engine whose share is run, 0..engines-1


@dataclass
class OutputConfig:
    """What runs write besides ``summary.json``."""

    timeseries_points: int = 2000  # occupancy samples per tier (over access index)
    progress: bool = True


@dataclass
class PathsConfig:
    """Where shared inputs live."""

    traces: str = MISSING


@dataclass
class SimConfig:
    """Knobs of the SimPy timed model (``exo-sim``); options live in ``conf/sim/`` (``sim=default``).

    Arrivals (``arrival``): ``trace`` takes each request's timestamp from the workload (the first
    request arrives at 0 s); ``poisson`` and ``fixed_rate`` are open loop at ``arrival_rate_per_s``
    requests/s; ``closed_loop`` runs ``agents`` agents, each issuing the next request of the workload
    when its previous one is served and a think time (``think_time_s``, ``fixed`` or ``exponential``
    with that mean) has passed. Every process hands requests to the decision core in workload order.

    Serving: each request waits for one of ``compute_engines`` compute engines
    (a GPU, or a TP group; one request at a time each, FCFS: no batching of prefills), loads its
    cached prefix from lower tiers over the links (and decodes it on one of ``codec_workers`` codec
    engines), then prefills the rest at the hardware profile's prefill cost ``prefill_s(n, p)``
    (:mod:`exo_sim.compute`); TTFT is the sum. ``overlap=layerwise`` pipelines the load with the
    prefill layer by layer, as LMCache and SGLang HiCache do. A payload without an architecture (RAG
    chunks) is computed at ``prefill_tokens_per_s`` tokens/s instead. A block changing codec between
    tiers is decoded and re-encoded at the hardware profile's codec throughputs. Victims are
    demoted in the ``background`` (the request does not wait for them) or ``sync`` (it does). A
    promotion crossing several links is carried ``store_and_forward`` (one link after the other) or
    ``pipeline`` (all links held at once, the slowest one setting the pace). What the engine spends
    around the prefill (scheduling, the KV load out of the top tier, the KV store after the first
    token, and whether its own thread does the copies) is the hardware profile's ``engine``.
    """

    arrival: str = "trace"  # trace | poisson | fixed_rate | closed_loop
    arrival_rate_per_s: Optional[float] = None  # poisson and fixed_rate only
    agents: int = 8  # closed_loop only
    think_time_s: float = 0.0  # closed_loop only
    think_time_dist: str = "fixed"  # fixed | exponential
    demotion: str = "background"  # background | sync
    multi_hop: str = "store_and_forward"  # store_and_forward | pipeline
    prefill_tokens_per_s: float = 10_000.0  # payloads without an architecture or encoder cost
    compute_engines: int = 1
    overlap: str = "none"  # none | layerwise
    codec_workers: int = 1
    write_requests: bool = True  # write requests.parquet (one row per request)


@dataclass
class CalibrateConfig:
    """What ``exo-calibrate`` measures and where it writes the profile.

    Each link of the chosen ``hardware`` profile is measured in both directions by copying blocks of
    every size in ``block_sizes_bytes`` one at a time (shuffled slots, so no two copies coalesce)
    through the runtime's own stores, ``bytes_per_size`` bytes per size and direction, best of
    ``repeats``. Codecs are timed on ``codec_elements`` float32 elements. The profile is written to
    ``<out_dir>/<name>.yaml`` (default ``~/.config/exo/hardware/calibrated/<hostname>.yaml``; ``$EXO_CONFIG_DIR``
    or ``$XDG_CONFIG_HOME/exo`` replace ``~/.config/exo``, a folder every console script searches) and loads with
    ``hardware=calibrated/<name>``. The payload's prefill compute is fitted over a grid of
    prefills (:mod:`exo_runtime.engine.calibrate_compute`). A ``rag_chunk`` payload's encoder is timed
    over forward passes of every count in ``encode_batch_chunks`` chunks (at most 32, the runtime's
    batch) of every length in ``encode_chunk_tokens`` tokens (at most 256), median of ``repeats``
    after one warm-up each. With ``engine`` the engine's own costs (scheduling, KV load and store)
    are measured for the config's top tier, codec and block size and written as the profile's
    ``engine`` section.
    """

    name: Optional[str] = None
    out_dir: Optional[str] = None
    block_sizes_bytes: list[int] = field(default_factory=lambda: [65536, 1048576, 8388608])
    bytes_per_size: int = 134217728
    repeats: int = 3
    codec_elements: int = 4194304
    encode_batch_chunks: list[int] = field(default_factory=lambda: [1, 4, 16, 32])
    encode_chunk_tokens: list[int] = field(default_factory=lambda: [64, 256])
    engine: bool = True


@dataclass
class MrcConfig:
    """Knobs of the miss-ratio curves (``exo-mrc``), owned by :mod:`exo_sim.mrc`.

    ``policies`` are drawn for one cache tier; ``lru`` comes from one pass (stack distances), every
    other policy from one replay per capacity, run on ``jobs`` processes (0: one per CPU core).
    Capacities are ``capacities_blocks`` if given, else ``points`` capacities spaced ``log`` or
    ``linear`` from ``min_blocks`` to ``max_blocks`` (default: the workload's distinct blocks).
    ``sample_rate`` (0 < r <= 1; 1: exact) or ``sample_size`` (distinct blocks kept), never both,
    asks for sampled curves (:mod:`exo_sim.mrc_sampling`: SHARDS for LRU, miniature simulation else).
    ``memory_budget`` (a size; ``None``: half the machine's memory) refuses exact curves estimated to
    need more (:mod:`exo_sim.mrc_memory`).
    """

    policies: list[str] = field(default_factory=lambda: ["lru"])
    capacities_blocks: Optional[list[int]] = None
    points: int = 100
    min_blocks: int = 1
    max_blocks: Optional[int] = None
    spacing: str = "log"  # log | linear
    jobs: int = 0
    sample_rate: Optional[float] = None
    sample_size: Optional[int] = None
    memory_budget: Any = None  # bytes or a size (exo_sim.units); None: half the machine's memory


@dataclass
class RuntimeConfig:
    """Knobs of the real backend (``exo-run``, ``exo-calibrate``); owned by ``exo_runtime``.

    ``data_dir`` holds the file tiers' slab files and manifests (default: ``data/`` in the run's
    output folder); ``resume`` reuses the blocks a previous run persisted there. ``staging_bytes`` is
    the host staging pool a batch's staged sources go to (``None``: 64 MiB, or four of the largest
    blocks if that is more); ``codec_scratch_bytes`` the float32 scratch codecs decode into.
    ``integrity``: ``off``, ``checksum`` (every read is checked bit for bit against the CRC-32 taken
    when it was written) or ``full`` (also regenerate each block's birth data and check decoded values
    against the codec's error bound). ``manifest_interval_s``: how often the file tier's manifest is
    committed; ``file_spare_fraction``: extra file slots for copy-on-write reuse (a freed slot is
    rewritten only once a manifest no longer naming its block is durable). ``pace_arrivals`` waits for
    each request's arrival time instead of running as fast as possible. ``prefault`` touches every page
    of the memory slabs before the run so that none is faulted in during a timed copy.
    ``file_io_threads`` positioned reads/writes a file tier keeps in flight at once (an NVMe drive needs
    a queue deeper than one to reach its bandwidth). ``codec_threads``: torch's CPU threads during a run
    (1 by default: a batch's tensors are small, and handing them to more threads costs more than it
    saves on a few cores; raise it for blocks of many megabytes). ``compute``: ``model`` (the engine's
    model computes every block: a real prefill of a KV payload's transformer over the cached prefix,
    the MiniLM encoder for RAG chunks) or ``seeded`` (no model: a computed block is seeded random data
    of the payload's shape — a byte mover for checking decisions on long traces; its TTFT has no
    compute, and only it supports ``integrity=full``). ``prefill_chunk_tokens``: the longest prefill
    run in one forward pass (longer prompts are prefilled in chunks, as vLLM's chunked prefill).
    """

    data_dir: Optional[str] = None
    resume: bool = False
    staging_bytes: Any = None  # bytes or a size (exo_sim.units); None: the default above
    codec_scratch_bytes: Any = 67108864  # bytes or a size (exo_sim.units)
    telemetry_interval_s: float = 0.1
    integrity: str = "checksum"  # off | checksum | full
    manifest_interval_s: float = 1.0
    file_spare_fraction: float = 0.05
    pace_arrivals: bool = False
    prefault: bool = True
    file_io_threads: int = 4
    codec_threads: int = 1
    compute: str = "model"  # model | seeded
    prefill_chunk_tokens: int = 4096
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)


@dataclass
class PhaseConfig:
    """A growth phase of the roadmap (``conf/phase/``; ``exo-plan phase=1m``).

    ``target_tokens`` is the live context the hierarchy must serve: the tokens of every active
    session's context at one time (K = 1024, M = 1024 x 1024). ``next_phase`` names the roadmap's
    next option in ``conf/phase/`` (``None`` for the last phase); the plan sizes the next phase's
    capacity from it.
    """

    name: str = MISSING
    target_tokens: int = MISSING
    next_phase: Optional[str] = None
    description: str = ""


@dataclass
class AccuracyBudgetConfig:
    """``plan.accuracy_budget``: what a recommended codec mix may cost in accuracy, as measured.

    Measured by ``experiments.planning.accuracy`` on trained MiniLM-L6 (a proxy for the served model):
    a rag_chunk mix needs recall@10 of at least ``min_recall_at_10`` against fp32; a KV mix a K/V
    relative error (||K'-K|| / ||K||, with V) of at most ``max_kv_relative_error``. ``enabled: false``
    measures nothing and filters nothing.
    """

    enabled: bool = True
    min_recall_at_10: float = 0.95
    max_kv_relative_error: float = 0.05


@dataclass
class PlanConfig:
    """Knobs of the planning report (``exo-plan``), owned by ``experiments.planning``.

    The timed sweep runs every option of ``policies`` (``conf/policy/``) against every option of
    ``codecs`` (``conf/codec/``) through ``exo-sim -m`` on ``sweep_jobs`` processes (-1: one per
    core), stopped after ``sweep_timeout_s``. With ``size_workload`` the workload is sized so that its
    live context is the phase's target (agent_sessions: concurrent sessions, with
    ``session_generations`` sessions per concurrent slot and at least ``min_sessions``; zipf: objects,
    ``zipf_reads_per_block`` reads each); traces are used as given. Above ``sweep_live_tokens`` of
    live context the timed sweep runs a 1:k miniature (tier capacities and the workload's size —
    concurrent sessions, objects — divided by k, the request rate kept), above ``replay_live_tokens``
    so do the replay and the miss-ratio curves; k stops where a tier would hold fewer than
    ``min_miniature_blocks`` blocks, or the top tier fewer than two sessions' contexts. A target over
    ``max_overcommit`` times what the whole hierarchy holds in its densest codec is not simulated.
    Among configurations within ``p99_tolerance`` (a fraction) of the best p99 latency, the most
    precise codec mix is recommended.
    Inverse queries (:mod:`experiments.planning.inverse`): for each tier below the top, the capacity
    that reaches each prefix hit ratio of ``hit_targets`` (fractions in (0, 1)); and the cheapest
    hierarchy (``cost_per_gb``: a price per GB of 10^9 bytes per tier name or medium; the defaults
    are assumed list prices, set your own) whose TTFT p99 is at most ``ttft_p99_target_s`` seconds
    (null: not searched), timing at most ``hierarchy_sims`` candidates.
    ``mrc_points``: capacities per miss-ratio curve. ``pin_gbps_low`` / ``pin_gbps_high``: the
    cudaHostRegister speed range (GB/s) assumed for the pinning start-up estimate. ``audit_*``: the
    profile, codec mix, payloads and published claims of the seed-workstation audit (claimed tokens per
    tier; claimed size reduction per codec). ``accuracy_budget``: see :class:`AccuracyBudgetConfig`.
    """

    policies: list[str] = field(default_factory=lambda: ["seed", "s3fifo", "arc"])
    codecs: list[str] = field(default_factory=lambda: ["seed_mix", "fp16", "int8", "int4"])
    size_workload: bool = True
    session_generations: int = 3
    min_sessions: int = 96
    zipf_reads_per_block: int = 10
    sweep_live_tokens: int = 1048576
    replay_live_tokens: int = 16777216
    min_miniature_blocks: int = 8
    max_overcommit: float = 16.0
    p99_tolerance: float = 0.05
    mrc_points: int = 60
    sweep_jobs: int = -1
    sweep_timeout_s: float = 600.0
    pin_gbps_low: float = 1.0
    pin_gbps_high: float = 2.0
    audit_hardware: str = "seed_workstation"
    audit_codec: str = "seed_mix"
    audit_payloads: list[str] = field(
        default_factory=lambda: ["llama3_8b_kv", "llama3_70b_kv", "rag_chunk_minilm"]
    )
    audit_claimed_tokens: dict[str, int] = field(
        default_factory=lambda: {"vram": 262144, "shared": 262144, "ram": 1048576, "nvme": 10485760}
    )
    audit_claimed_reduction: dict[str, float] = field(default_factory=lambda: {"int8": 0.50, "fp16": 0.25})
    hit_targets: list[float] = field(default_factory=lambda: [0.5, 0.6, 0.7, 0.8, 0.9])
    cost_per_gb: dict[str, float] = field(
        default_factory=lambda: {"cuda": 25.0, "pinned": 3.0, "shm": 3.0, "ram": 3.0, "file": 0.08}
    )
    ttft_p99_target_s: Optional[float] = 1.0
    hierarchy_sims: int = 4
    accuracy_budget: AccuracyBudgetConfig = field(default_factory=AccuracyBudgetConfig)


@dataclass
class CrosscheckTargetsConfig:
    """The cross-check's error targets (fractions; see :class:`CrosscheckConfig`)."""

    ttft_median: float = 0.10
    ttft_p99: float = 0.15
    makespan: float = 0.15
    makespan_median: float = 0.05


@dataclass
class CrosscheckConfig:
    """Knobs of the cross-check (``exo-crosscheck``), owned by ``experiments.crosschecking``.

    ``configs`` names the suite's configs: options of ``conf/experiment/crosscheck/`` (each one also
    runs alone, e.g. ``exo-run experiment=crosscheck/<name>``); a suite is an option of
    ``conf/crosscheck/`` (``exo-crosscheck crosscheck=tiny``). With ``calibrate`` the host is first
    measured by ``exo-calibrate`` into ``calibration_name`` under the run's folder; otherwise
    ``profile`` names an existing ``hardware=calibrated/<profile>``.
    Each config runs the timed model, then the runtime ``repeats`` times (the run with the median
    makespan is compared). ``targets`` are the model's error bounds (fractions): a config passes when
    its hits are identical, its median per-request TTFT error is within ``ttft_median``, its p99 TTFT
    error within ``ttft_p99`` and its makespan error within ``makespan``; the suite also needs its
    median makespan error within ``makespan_median``.
    """

    name: str = "cpu"
    configs: list[str] = field(default_factory=list)
    calibrate: bool = True
    calibration_name: str = "crosscheck"
    profile: Optional[str] = None
    repeats: int = 1
    targets: CrosscheckTargetsConfig = field(default_factory=lambda: CrosscheckTargetsConfig())


@dataclass
class DeviceConfig:
    """A GPU of the catalogue (``conf/gpu/<device>.yaml``, chosen with ``gpu=<device>``), from its spec sheet.

    ``memory_bytes``: the device memory (a size); ``bf16_dense_flops`` / ``fp8_dense_flops``: peak
    dense tensor FLOP/s (no sparsity; ``fp8`` ``None`` where the device has none);
    ``memory_bytes_per_s``: the memory's bandwidth; ``pcie_gen``: the host link (x16); ``source``:
    where the figures come from.
    """

    name: str = MISSING
    memory_bytes: Any = MISSING
    bf16_dense_flops: float = MISSING
    fp8_dense_flops: Optional[float] = None
    memory_bytes_per_s: float = MISSING
    pcie_gen: int = MISSING
    source: str = ""


@dataclass
class NodeConfig:
    """How a one-line node (``gpu=... host_memory=... nvme=...``) splits its host memory (:mod:`exo_sim.node`).

    ``pinned_fraction`` of ``host_memory`` is page-locked for the GPUs, at most ``pin_limit`` (what
    the cgroup or ``ulimit -l`` lets the engine lock; ``None``: no limit known); ``host_reserve`` is
    kept for the OS and the engine's processes; the rest is the RAM tier. Sizes as in :mod:`exo_sim.units`.
    """

    pinned_fraction: float = 0.25
    pin_limit: Any = None
    host_reserve: Any = "16GiB"


@dataclass
class ExoConfig:
    """The root config every exo app reads (``conf/config.yaml``)."""

    hardware: HardwareConfig = MISSING
    payload: PayloadConfig = MISSING
    codec: CodecMixConfig = MISSING
    policy: PolicyMixConfig = MISSING
    hierarchy: HierarchyConfig = MISSING
    workload: Any = MISSING
    block_tokens: int = 256
    capacity_blocks: Optional[int] = None
    seed: int = 0
    output: OutputConfig = field(default_factory=OutputConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    mrc: MrcConfig = field(default_factory=MrcConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    phase: PhaseConfig = MISSING  # exo-plan's growth phase (conf/phase/)
    plan: PlanConfig = field(default_factory=PlanConfig)
    crosscheck: CrosscheckConfig = field(default_factory=CrosscheckConfig)
    # a node in one line (exo_sim.node): gpu=<device> (conf/gpu/) selects hardware=node
    gpu: Optional[DeviceConfig] = None
    gpus: int = 1
    tp: int = 1  # tensor-parallel ranks per model replica; with gpu=..., the payload's tensor_parallel
    host_memory: Any = None  # the node's host memory, a size (1TiB)
    nvme: Any = None  # the node's NVMe, a size (8TB)
    node: NodeConfig = field(default_factory=NodeConfig)


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=ExoConfig)
    cs.store(group="hardware", name="base_hardware", node=HardwareConfig)
    cs.store(group="payload", name="base_payload", node=PayloadConfig)
    cs.store(group="codec", name="base_codec", node=CodecMixConfig)
    cs.store(group="policy", name="base_policy", node=PolicyMixConfig)
    cs.store(group="hierarchy", name="base_hierarchy", node=HierarchyConfig)
    cs.store(group="sim", name="base_sim", node=SimConfig)
    cs.store(group="phase", name="base_phase", node=PhaseConfig)
    from omegaconf import OmegaConf

    from exo_sim.node import resolve

    if not OmegaConf.has_resolver("exo_node"):
        OmegaConf.register_new_resolver("exo_node", resolve)
    from exo_sim.workloads import workload_schemas

    for kind, schema in workload_schemas().items():
        cs.store(group="workload", name=f"base_{kind}", node=schema)
