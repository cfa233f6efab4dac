"""``exo-mrc``: miss-ratio curves of one cache tier for a workload.

``exo-mrc experiment=single_tier workload=mooncake mrc.policies=[lru,fifo,s3fifo]``.

Writes ``mrc.parquet`` (capacity_blocks, capacity_bytes, capacity_tokens, hit_ratio, miss_ratio,
policy, method, hits, accesses, reuse, hit_tokens, prompt_tokens, token_hit_ratio, refused_requests,
sample_rate; see :data:`exo_sim.mrc.COLUMNS`) and the figure ``mrc.png`` into Hydra's run folder; the table is
written last, atomically, so a failed run leaves none. Under ``hierarchy.reuse=prefix`` (Mooncake on a
KV-cache payload) the hit ratio is the prefix-hit ratio: hit blocks / read blocks of served requests.

``mrc.sample_rate=0.01`` (or ``mrc.sample_size=100000`` distinct blocks) draws sampled curves instead
(:mod:`exo_sim.mrc_sampling`): ``method`` is ``shards@0.01`` for LRU, ``mini@0.01`` for the others,
and ``sample_rate`` holds the rate; refused under prefix reuse.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from exo_sim.cli.entry import CONF_DIR, make_locator, setup, user_errors
from exo_sim.mrc import MrcResult, plan_mrc, plot_mrc, run_mrc
from exo_sim.mrc_memory import check_exact_curve_memory

setup()


def mrc_to_dir(cfg: DictConfig, out_dir: str | Path) -> MrcResult:
    """Validate ``cfg``, compute its curves and write ``mrc.png`` then ``mrc.parquet`` into ``out_dir``."""
    locate = make_locator()
    plan = plan_mrc(cfg, locate)
    if plan.sampling is None:  # exact curves hold the whole trace: say how much, or refuse
        print(check_exact_curve_memory(cfg, plan.workload, plan.policies, plan.reuse, locate).line(), flush=True)
    if bool(cfg.output.progress) and sys.stderr.isatty():
        print(f"mrc: {', '.join(plan.policies)} over {plan.workload.kind} ...", file=sys.stderr)
    result = run_mrc(cfg, plan=plan)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{plan.workload.kind}, {plan.spec.block_tokens}-token blocks, {plan.spec.payload}/{plan.codec}"
    if result.notes and int(result.frame["hits"].max()) == 0:
        title += "\nno reuse within the capacities: every curve is 0"
    if plan.sampling is not None:
        title += "\nsampled: " + ", ".join(dict.fromkeys(result.frame["method"].astype(str)))
    tmp_png = out / "mrc.tmp.png"
    plot_mrc(result.frame, tmp_png, title)
    os.replace(tmp_png, out / "mrc.png")
    tmp = out / "mrc.parquet.tmp"
    result.frame.to_parquet(tmp, index=False)
    os.replace(tmp, out / "mrc.parquet")
    return result


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Console entry point (``exo-mrc``)."""
    with user_errors():
        out = HydraConfig.get().runtime.output_dir
        result = mrc_to_dir(cfg, out)
        f = result.frame
        print(
            f"mrc: {result.references:,} references ({result.reads:,} reads), "
            f"{result.distinct_blocks:,} distinct blocks, {f['capacity_blocks'].nunique()} capacities, "
            f"{result.reuse} reuse"
        )
        label = "prefix-hit ratio (hit blocks / read blocks)" if result.reuse == "prefix" else "hit ratio"
        for policy, g in f.groupby("policy", sort=False):
            first, top = g.iloc[0], g.iloc[-1]
            counts = g["method"].value_counts(sort=False)
            methods = ", ".join(f"{m} x{n}" if len(counts) > 1 else str(m) for m, n in counts.items())
            print(
                f"  {policy:<8} ({methods}): {label} {first['hit_ratio']:.4f} at "
                f"{int(first['capacity_blocks']):,} blocks .. {top['hit_ratio']:.4f} at "
                f"{int(top['capacity_blocks']):,} blocks; tokens {first['token_hit_ratio']:.4f} .. "
                f"{top['token_hit_ratio']:.4f}"
            )
        for note in result.notes:
            print(f"warning: {note}", file=sys.stderr)
        print(f"-> {out}/mrc.parquet, {out}/mrc.png")


if __name__ == "__main__":
    main()
