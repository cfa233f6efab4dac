"""``exo-sim``: the SimPy timed model of one config, or a sweep with ``-m``.

Writes ``requests.parquet``, ``timeseries.parquet`` and then ``summary.json`` (last, atomically) into
Hydra's run folder; a summary left by an earlier run in the same folder is removed first, so an
interrupted run never leaves one that looks complete. With ``-m`` the jobs run in parallel through
the configured Hydra launcher (joblib on this machine's cores by default) and
:class:`exo_sim.sweep.SweepGatherer` gathers them into ``sweep.parquet`` and figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from exo_sim.cli.entry import CONF_DIR, make_locator, progress_bar, setup, user_errors
from exo_sim.results import write_results
from exo_sim.sim.run import SimResult, prepare_sim, run_sim

setup()


def sim_to_dir(cfg: DictConfig, out_dir: str | Path, show_progress: bool | None = None) -> SimResult:
    """Validate ``cfg``, run the timed model and write its results into ``out_dir``.

    Args:
        cfg: the composed root config.
        out_dir: the run's folder (Hydra's output folder).
        show_progress: draw a progress bar (accesses/s); by default when stderr is a terminal and
            ``output.progress`` is on.

    Raises:
        ExoError: on invalid config or trace, before any work starts where it can be known.
    """
    locate = make_locator()
    _, workload, _, _ = prepare_sim(cfg, locate)
    stale = Path(out_dir) / "summary.json"
    if stale.exists():
        stale.unlink()
    with progress_bar(cfg, workload.estimated_refs(), "sim", show_progress) as bar:
        result = run_sim(cfg, locate=locate, progress=bar.update)
    frames = {"timeseries": result.series.frame(result.spec)}
    if result.model.settings.write_requests:
        frames["requests"] = result.requests
    write_results(out_dir, result.summary, frames)
    return result


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Console entry point (``exo-sim``)."""
    with user_errors():
        out = HydraConfig.get().runtime.output_dir
        try:
            result = sim_to_dir(cfg, out)
        except KeyboardInterrupt:
            print(f"interrupted: no summary.json was written in {out}", file=sys.stderr)
            sys.exit(130)
        s = result.summary
        top = s["tiers"][0]
        p99 = s["ttft_s"]["p99"]
        print(
            f"sim {s['hardware']}/{OmegaConf.select(cfg, 'policy.name')}/{OmegaConf.select(cfg, 'codec.name')}: "
            f"{s['requests']} requests, {s['accesses']} accesses, {s['reuse']} reuse, top-tier hit ratio "
            f"{top['hit_ratio']:.4f}, TTFT p99 {p99 if p99 is not None else float('nan'):.6g} s, "
            f"makespan {s['makespan_s']:.6g} s, "
            f"{s['accesses_per_s'] or 0:,.0f} accesses/s -> {out}/summary.json"
        )


if __name__ == "__main__":
    main()
