"""Engine prefill throughput: the engine's model vs a bare forward pass of the same model, same process.

For each case ``(n, p)`` — ``n`` new tokens after ``p`` cached ones — times
:meth:`~exo_runtime.engine.model.DecoderModel.prefill` as the runtime calls it (the cached prefix
handed over layer by layer through ``past_loader``, from KV already in memory, so no load is timed)
and a bare forward pass written here without the engine's plumbing (a plain loop over the same
weights with torch ops: no argument checks, no hook, no result object), both computing only the last
token's logits. Prints new tokens/s for each and their ratio (engine / bare: the median over adjacent pairs of
runs), then ``worst ratio``.
Threads are pinned as the runtime pins them (``--threads``, default 1); each figure is the median of
``--repeats`` samples after ``--warmup`` runs, the two alternating; a sample repeats a short prefill
back to back for at least ``--min-sample-s`` and counts the time per call.

    python experiments/bench_engine.py                       # tiny_llama_kv on the CPU, 1 thread
    python experiments/bench_engine.py --threads 2 --cases 512:0,512:1536
    python experiments/bench_engine.py --device cuda         # on a GPU host (bf16)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from exo_runtime.engine.fit import check_engine_fits
from exo_runtime.engine.model import RMS_EPS, DecoderModel, PastKV, default_compute_dtype
from exo_sim.architecture import architecture_of
from exo_sim.cli.entry import CONF_DIR, setup

DEFAULT_CASES = "64:0,512:0,512:512,128:1536,2048:0"


def bare_prefill(m: DecoderModel, ids: torch.Tensor, past: PastKV | None) -> torch.Tensor:
    """The same forward pass with nothing but torch ops: the last token's logits."""
    n, p, d = ids.numel(), (past[0][0].shape[1] if past else 0), m.head_dim
    pos = torch.arange(p, p + n, device=m.device, dtype=torch.float64)
    ang = torch.outer(pos, 1.0 / (500_000.0 ** (torch.arange(0, d, 2, device=m.device, dtype=torch.float64) / d)))
    ang = torch.cat((ang, ang), dim=1).float()
    cos, sin = ang.cos().to(m.dtype), ang.sin().to(m.dtype)
    mask = torch.ones((n, p + n), dtype=torch.bool, device=m.device).tril(p) if p else None
    x = F.embedding(ids, m.embed)
    for i, w in enumerate(m.layers):
        h = F.rms_norm(x, (m.hidden_size,), w.attn_norm, RMS_EPS)
        q, k, v = F.linear(h, w.qkv).split([m.heads * d, m.kv_heads * d, m.kv_heads * d], dim=1)
        q = q.view(n, m.heads, d).transpose(0, 1)
        k = k.view(n, m.kv_heads, d).transpose(0, 1)
        q = q * cos + torch.cat((-q[..., d // 2 :], q[..., : d // 2]), dim=-1) * sin
        k = k * cos + torch.cat((-k[..., d // 2 :], k[..., : d // 2]), dim=-1) * sin
        v = v.view(n, m.kv_heads, d).transpose(0, 1)
        if past:
            k, v = torch.cat((past[i][0], k), dim=1), torch.cat((past[i][1], v), dim=1)
        a = F.scaled_dot_product_attention(q[None], k[None], v[None], attn_mask=mask, is_causal=mask is None,
                                           enable_gqa=True)[0]
        x = x + F.linear(a.transpose(0, 1).reshape(n, m.heads * d), w.o)
        h = F.rms_norm(x, (m.hidden_size,), w.mlp_norm, RMS_EPS)
        gate, up = F.linear(h, w.gate_up).chunk(2, dim=1)
        x = x + F.linear(F.silu(gate) * up, w.down)
    return F.linear(F.rms_norm(x[-1:], (m.hidden_size,), m.final_norm, RMS_EPS), m.lm_head)[0].float()


def timed(fn: Callable[[], object], device: torch.device, calls: int = 1) -> float:
    """Seconds per call of ``fn`` over ``calls`` back-to-back calls."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--payload", default="tiny_llama_kv")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the runtime pins them)")
    ap.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated n:p (new:cached tokens)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--min-sample-s", type=float, default=0.1, help="a sample repeats a short prefill this long")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    setup()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=[f"payload={args.payload}"])
    arch = architecture_of(cfg.payload)
    if arch is None:
        print(f"payload {args.payload} has no model architecture", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    dtype = default_compute_dtype(device)
    fit = check_engine_fits(arch, dtype, device, payload_name=args.payload)
    model = DecoderModel(arch, seed=args.seed, device=device, dtype=dtype)
    print(f"{args.payload} on {device} ({str(dtype).removeprefix('torch.')}, {torch.get_num_threads()} thread(s)); "
          f"matmul {fit.flops_per_s / 1e9:.0f} GFLOP/s ({fit.flops_basis})")
    print(f"weights: {model.weights_note}")
    print(f"{'n':>6} {'p':>6} {'engine tok/s':>13} {'bare tok/s':>11} {'ratio':>6}")

    gen = torch.Generator().manual_seed(args.seed)
    worst = float("inf")
    for case in args.cases.split(","):
        n, p = (int(x) for x in case.split(":"))
        ids = torch.randint(0, arch.vocab_size, (p + n,), generator=gen).to(device)
        past = model.prefill(ids[:p]).kv if p else None
        new = ids[p:]

        def engine(new: torch.Tensor = new, past: PastKV | None = past, p: int = p) -> torch.Tensor:
            if past is None:
                return model.prefill(new).logits
            return model.prefill(new, position=p, past_loader=past.__getitem__).logits

        def bare(new: torch.Tensor = new, past: PastKV | None = past) -> torch.Tensor:
            with torch.no_grad():
                return bare_prefill(model, new, past)

        gap = (engine() - bare()).abs().max().item()
        if gap > (1e-4 if dtype == torch.float32 else 5e-2):
            print(f"n={n} p={p}: the engine and the bare pass disagree by {gap:g}", file=sys.stderr)
            return 1
        once = min(timed(engine, device) for _ in range(max(1, args.warmup)))
        for _ in range(args.warmup):
            bare()
        calls = max(1, math.ceil(args.min_sample_s / once))
        t_engine, t_bare = [], []
        for r in range(args.repeats):
            # adjacent pairs, order alternating, so a change in the host's load hits both alike
            if r % 2:
                t_bare.append(timed(bare, device, calls))
                t_engine.append(timed(engine, device, calls))
            else:
                t_engine.append(timed(engine, device, calls))
                t_bare.append(timed(bare, device, calls))
        tps_engine = n / statistics.median(t_engine)
        tps_bare = n / statistics.median(t_bare)
        ratio = statistics.median(b / e for e, b in zip(t_engine, t_bare, strict=True))
        worst = min(worst, ratio)
        print(f"{n:>6} {p:>6} {tps_engine:>13,.0f} {tps_bare:>11,.0f} {ratio:>6.3f}")
    worst = min(worst, engine_path(model, arch, args, gen, device))
    worst = min(worst, load_path(cfg, args))
    print(f"worst ratio: {worst:.3f}")
    return 0


ENGINE_CASES = ((512, 0, 4096), (2048, 0, 4096), (8192, 0, 2048), (2048, 6144, 2048))
"""exo-run's prefill path: ``(n, p, chunk_tokens)`` -- ``n`` new tokens after ``p`` cached ones, prefilled
in chunks of at most ``chunk_tokens`` (the long cases chunk; the bare pass never does)."""


def engine_path(model: DecoderModel, arch: object, args: argparse.Namespace, gen: torch.Generator,
                device: torch.device) -> float:
    """exo-run's prefill (PrefixEngine: the cached prefix written from its decoded blocks into the request's KV,
    chunked prefill, then the new KV cut into blocks) against the bare forward pass of the same new tokens in
    one pass over the prefix's KV in memory; the worst ratio of new tokens/s. Each case is first checked:
    the chunked KV equals the one-pass model's."""
    from exo_runtime.engine.content import ComputeClock
    from exo_runtime.engine.model import kv_to_blocks
    from exo_runtime.engine.serve import PrefixEngine

    block_tokens = 256
    engine = PrefixEngine.__new__(PrefixEngine)  # only its prefill is timed: no tiers behind it
    engine.model, engine.clock = model, ComputeClock(device)
    print(f"{'n':>6} {'p':>6} {'chunk':>6} {'exo-run tok/s':>13} {'bare tok/s':>11} {'ratio':>6}   (engine path)")
    worst = float("inf")
    for n, p, chunk in ENGINE_CASES:
        engine.chunk_tokens = chunk
        ids = torch.randint(0, model.arch.vocab_size, (p + n,), generator=gen)
        whole = model.prefill(ids.to(device)).kv  # the one-pass reference for the check
        past = [(k[:, :p].clone(), v[:, :p].clone()) for k, v in whole] if p else None
        past_blocks = torch.stack(kv_to_blocks(past, block_tokens)) if past else None
        new = ids[p:]

        def run(new: torch.Tensor = new, past_blocks: torch.Tensor | None = past_blocks, p: int = p) -> object:
            kv, _ = engine._prefill(new, past_blocks, p)
            return kv_to_blocks(kv.kv(p), block_tokens)

        def bare(new: torch.Tensor = new, past: PastKV | None = past) -> object:
            with torch.no_grad():
                return bare_prefill(model, new.to(device), past)

        got = torch.stack(run())  # type: ignore[arg-type]
        want = torch.stack(kv_to_blocks([(k[:, p:], v[:, p:]) for k, v in whole], block_tokens))
        gap = (got - want).abs().max().item()
        if gap > (1e-4 if model.dtype == torch.float32 else 5e-2):
            print(f"n={n} p={p} chunk={chunk}: exo-run's KV and the one-pass KV disagree by {gap:g}", file=sys.stderr)
            sys.exit(1)
        del whole, got, want
        bare()
        t_run: list[float] = []
        t_bare: list[float] = []
        for r in range(args.repeats):
            pair = ((run, t_run), (bare, t_bare)) if r % 2 == 0 else ((bare, t_bare), (run, t_run))
            for fn, out in pair:
                out.append(timed(fn, device))
        ratio = statistics.median(b / e for e, b in zip(t_run, t_bare, strict=True))
        worst = min(worst, ratio)
        print(f"{n:>6} {p:>6} {chunk:>6} {n / statistics.median(t_run):>13,.0f} "
              f"{n / statistics.median(t_bare):>11,.0f} {ratio:>6.3f}")
    return worst


LOAD_BLOCKS = (64, 512)
"""Prefix lengths of the load path, in blocks of 256 tokens of tiny_llama_kv: 64 (16K tokens: 32 MiB in fp32,
8 MiB in int8, which a raw copy may find in a 32 MiB L3) and 512 (128K tokens: 256 MiB in fp32, 65 MiB in int8,
beyond the L3 for every codec; the float32 output is 256 MiB)."""


def load_path(cfg: object, args: argparse.Namespace) -> float:
    """exo-run's load path against a raw copy of the same bytes out of the same store; the worst ratio.

    For each host medium (``shm``, ``ram``), each codec of the seed mix (``conf/codec/seed_mix.yaml``: every
    codec it uses, fast or not) and each prefix length in :data:`LOAD_BLOCKS`, the top tier's store holds
    that many blocks of ``payload`` in consecutive slots, encoded by the codec from random normal values,
    and these are timed, same process, one thread:

    * **load** -- ``TierIO.load(0, keys)``, exactly as exo-run calls it: for each block, read its bytes in
      place from the store's slab, compute their CRC-32C and decode them into float32 rows in one pass
      (``exo_runtime.native.fused_rows``; a codec with no fused decoder is checksummed in that pass, then
      decoded by torch), compare each CRC-32C with the copy's recorded one. It writes ``elements x 4``
      bytes per block.
    * **raw** -- ``store.read(slots, rows)``: the store's own copy of the same slots into a staging
      buffer (numpy, one copy per run of consecutive slots, so here one copy of the whole prefix: glibc's
      memcpy); no checksum, no decode. It writes ``slot_bytes`` per block.
    * **write** -- only for context: filling a float32 buffer of the load's output size (numpy ``fill``),
      the least any load that hands over float32 rows must do.

    Load and raw are checked first (every block verified, decode equal to ``codec.decode`` of the raw copy). A
    sample repeats a side back to back for at least ``--min-sample-s``; ``--repeats`` rounds of samples
    rotate which side runs first. Printed: store bytes per second of load and raw (the medians), their
    ratio (the median over rounds of raw time / load time) and ``bound``, the median of raw time /
    write time: the ratio a load would reach if it cost no more than writing its output (an int8 load
    writes 4 bytes per byte it reads, fp16 2, fp32 1).
    """
    from pathlib import Path

    from exo_runtime.buffers import StagingPool
    from exo_runtime.codecs import make_codec
    from exo_runtime.engine.tierio import TierIO
    from exo_runtime.executor import Copy, Executor
    from exo_runtime.integrity import row_crcs
    from exo_runtime.native import features, fused_decoder
    from exo_runtime.stores import StoreSettings, store_class
    from exo_sim.hierarchy import Hierarchy
    from exo_sim.spec import build_spec

    cpu = torch.device("cpu")
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        mix = compose("config", overrides=["codec=seed_mix"]).codec
    names = list(dict.fromkeys([*mix.per_tier.values(), mix.default]))
    simd = ", ".join(f"{k}={v}" for k, v in features().items())
    print(f"load path vs raw copy, store bytes/s; codecs of the seed mix: {', '.join(names)}; blocks of 256 tokens "
          f"({simd})")
    print(f"{'medium':>8} {'codec':>6} {'blocks':>6} {'MiB':>6} {'load GB/s':>10} {'raw GB/s':>9} {'ratio':>6} "
          f"{'bound':>6}  decode")
    worst = float("inf")
    gen = torch.Generator().manual_seed(args.seed)
    for medium in ("shm", "ram"):
        for codec_name in names:
            for n in LOAD_BLOCKS:
                with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
                    c = compose("config", overrides=[
                        f"payload={args.payload}", "hardware=ci_cpu", "block_tokens=256", f"codec={codec_name}",
                        f"hardware.tiers.0.medium={medium}", "hardware.tiers.0.capacity_bytes=null",
                        f"hardware.tiers.0.capacity_blocks={n + 8}", "hardware.tiers.1.capacity_bytes=null",
                        "hardware.tiers.1.capacity_blocks=8", "hardware.tiers.2.medium=ram",
                        "hardware.tiers.2.capacity_bytes=null", "hardware.tiers.2.capacity_blocks=8",
                        "runtime.compute=seeded"])
                spec = build_spec(c)
                st = StoreSettings(data_dir=Path("."), tag="exo-bench-load")
                stores = [store_class(t.medium)(t, st) for t in spec.tiers]
                codecs = [make_codec(t.codec, spec.content.elements, c.codec) for t in spec.tiers]
                ex = Executor(Hierarchy(spec), stores, codecs, None, StagingPool(1 << 22, False), 1 << 22,  # type: ignore[arg-type]
                              "checksum", {}, 1.0)
                top, codec = stores[0], codecs[0]
                assert codec is not None and codec.name == codec_name
                slots = [top.allocate() for _ in range(n)]
                rows = torch.zeros((n, ex._stride(0)), dtype=torch.uint8)
                codec.encode(torch.randn((n, ex.elements), generator=gen), rows)
                top.write(slots, rows)
                for key, (slot, crc) in enumerate(zip(slots, row_crcs(rows, top.slot_bytes), strict=True)):
                    ex.copies[key] = {0: Copy(slot, crc, 0.0, True)}
                io = TierIO(ex)
                raw_rows = torch.empty_like(rows)
                fill = torch.empty((n, ex.elements)).numpy()
                keys = list(range(n))

                def load(io: TierIO = io, keys: list[int] = keys) -> object:
                    return io.load(0, keys)

                def raw(top: object = top, slots: list[int] = slots, out: torch.Tensor = raw_rows) -> None:
                    top.read(slots, out)  # type: ignore[attr-defined]

                def write(fill: np.ndarray = fill) -> None:
                    fill.fill(0.0)

                xs, usable = io.load(0, keys)
                raw()
                want = torch.empty_like(xs)
                codec.decode(raw_rows, want)
                if usable != n or not torch.equal(xs, want):
                    print(f"{medium} {codec_name}: the load path verified {usable} of {n} blocks or decoded "
                          "them differently from the codec", file=sys.stderr)
                    sys.exit(1)
                write()
                calls = max(1, math.ceil(args.min_sample_s / min(timed(load, cpu), timed(raw, cpu))))
                sides: list[tuple[Callable[[], object], list[float]]] = [(load, []), (raw, []), (write, [])]
                for r in range(args.repeats):
                    for fn, out in sides[r % 3 :] + sides[: r % 3]:
                        out.append(timed(fn, cpu, calls))
                t_load, t_raw, t_write = (times for _, times in sides)
                ratio = statistics.median(w / l_ for l_, w in zip(t_load, t_raw, strict=True))
                bound = statistics.median(w / f for f, w in zip(t_write, t_raw, strict=True))
                worst = min(worst, ratio)
                nbytes = n * top.slot_bytes
                how = "fused" if fused_decoder(codec) is not None else "torch"
                print(f"{medium:>8} {codec_name:>6} {n:>6} {nbytes / 2**20:>6.0f} "
                      f"{nbytes / statistics.median(t_load) / 1e9:>10.2f} "
                      f"{nbytes / statistics.median(t_raw) / 1e9:>9.2f} {ratio:>6.3f} {bound:>6.3f}  {how}")
                for s_ in stores:
                    s_.close()
                del io, rows, raw_rows, xs, want, fill
    return worst


if __name__ == "__main__":
    sys.exit(main())
