"""``exo-run``: one config on this machine's real memories (the same configs as ``exo-replay``).

Writes ``summary.json`` (``source: runtime``, plus measured link bandwidth and codec throughput),
``timeseries.parquet``, ``requests.parquet`` and ``telemetry.parquet`` into Hydra's run folder; the
file tiers' slabs and manifests go to ``runtime.data_dir`` (default: ``data/`` in that folder).
Bad input or a config this machine cannot hold: one sentence, exit 2. A fault during the run (a full
disk, corrupted or lost blocks): results written, one sentence, exit 3.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from exo_runtime.run import RuntimeResult, run_runtime
from exo_sim.cli.entry import CONF_DIR, make_locator, progress_bar, setup, user_errors
from exo_sim.replay import prepare

setup()


def run_to_dir(cfg: DictConfig, out_dir: str | Path) -> RuntimeResult:
    """Validate ``cfg``, run it on the real memories and write its results into ``out_dir``."""
    locate = make_locator()
    _, workload = prepare(cfg, locate)
    with progress_bar(cfg, workload.estimated_refs(), "exo-run") as bar:
        return run_runtime(cfg, out_dir, locate=locate, progress=bar.update)


def _model_phrase(model: dict[str, Any]) -> str:
    """What computed the blocks, with its weights' note (the console says it, as summary.json does)."""
    if model["kind"] == "none":
        return "no model (runtime.compute=seeded: seeded blocks)"
    where = f"{model['params']:,} params, {model['dtype']} on {model['device']}"
    return f"{model['name']} {model['kind']} ({where}; {model['weights']})"


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Console entry point (``exo-run``)."""
    with user_errors():
        out = HydraConfig.get().runtime.output_dir
        result = run_to_dir(cfg, out)
        s = result.summary
        top = s["tiers"][0]
        lat = s["latency_s"]["p99"]
        print(
            f"run {s['hardware']}/{OmegaConf.select(cfg, 'policy.name')}: {s['accesses']} accesses, "
            f"top-tier hit ratio {top['hit_ratio']:.4f}, {s['recomputed_blocks']} recomputed blocks, "
            f"p99 latency {lat * 1e3 if lat is not None else float('nan'):.3f} ms, "
            f"makespan {s['makespan_s']:.2f} s; {_model_phrase(s['model'])} -> {out}/summary.json"
        )
        if result.fault is not None:
            raise result.fault


if __name__ == "__main__":
    main()
