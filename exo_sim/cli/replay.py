"""``exo-replay``: the fast replay (no clock) of one config, or a sweep with ``-m``.

Writes ``summary.json`` and ``timeseries.parquet`` into Hydra's run folder.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from exo_sim.cli.entry import CONF_DIR, interrupts, make_locator, progress_bar, setup, user_errors
from exo_sim.replay import ReplayResult, prepare, run_replay
from exo_sim.results import write_results

setup()


def replay_to_dir(cfg: DictConfig, out_dir: str | Path) -> ReplayResult:
    """Validate ``cfg``, replay it and write its results into ``out_dir``."""
    locate = make_locator()
    prepared = prepare(cfg, locate)
    with progress_bar(cfg, prepared[1].estimated_refs(), "replay") as bar:
        result = run_replay(cfg, progress=bar.update, prepared=prepared)
    write_results(out_dir, result.summary, {"timeseries": result.series.frame(result.spec)})
    return result


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Console entry point (``exo-replay``)."""
    out = HydraConfig.get().runtime.output_dir
    with user_errors(), interrupts(lambda: f"no summary.json was written in {out}"):
        result = replay_to_dir(cfg, out)
        s = result.summary
        top = s["tiers"][0]
        print(
            f"replay {s['hardware']}/{OmegaConf.select(cfg, 'policy.name')}/{OmegaConf.select(cfg, 'codec.name')}: "
            f"{s['accesses']} accesses, "
            f"top-tier hit ratio {top['hit_ratio']:.4f}, {s['recomputed_blocks']} recomputed blocks, "
            f"{s['accesses_per_s'] or 0:,.0f} accesses/s -> {out}/summary.json"
        )


if __name__ == "__main__":
    main()
