"""``exo-crosscheck``: the timed model against the runtime on a suite of configs, in one command.

``exo-calibrate`` measures this host into a calibrated profile and serial executor (under the run's
folder), then every config of the suite (``conf/crosscheck/<suite>.yaml``; its configs are options of
``conf/experiment/crosscheck/``) runs on the timed model and on the runtime, and the two are compared:
decisions must be identical, time is the model's relative error. Writes ``crosscheck.parquet``,
``report.md`` and ``report.html`` (with figures) into Hydra's run folder, prints one verdict per config
and ends with the line ``decisions identical K/N; makespan error median X%, worst Y%; p99 latency error
median Z%``. See :mod:`experiments.crosschecking.suite` for what runs how.

    exo-crosscheck                    # the CPU-only suite (a few minutes)
    exo-crosscheck crosscheck=tiny    # seconds
    exo-crosscheck crosscheck=gpu     # the four-tier suite, on a host with a GPU
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from exo_sim.cli.entry import CONF_DIR, setup, user_errors
from exo_sim.errors import ConfigError
from experiments.crosschecking.compare import Comparison, compare
from experiments.crosschecking.rates import BlockRates, model_overrides
from experiments.crosschecking.report import ReportInputs, results_frame, summary_line, write_report
from experiments.crosschecking.suite import (
    RunPair,
    calibrate_host,
    check_suite,
    compose_config,
    config_overrides,
    run_pair,
    suite_names,
)

setup()

Say = Callable[[str], None]


@dataclass
class CrosscheckResult:
    """What one cross-check produced: per-config comparisons, the summary line and the files written."""

    comparisons: list[Comparison]
    pairs: list[RunPair]
    line: str
    parquet: Path
    report_md: Path
    report_html: Path


def run_crosscheck(
    cfg: Any,
    out_dir: str | os.PathLike[str],
    overrides: Sequence[str] = (),
    say: Say | None = None,
    emit: Say | None = None,
) -> CrosscheckResult:
    """Calibrate this host, run every config of ``cfg.crosscheck`` on both clocks, compare, report.

    Args:
        cfg: the composed ``conf/crosscheck.yaml``.
        out_dir: where the calibration, every run, ``crosscheck.parquet`` and the report go.
        overrides: applied to every config of the suite (the command line's, ``crosscheck.*`` aside).
        say: told what is being done (progress).
        emit: given each config's one-line verdict as soon as it is known.

    Raises:
        ExoError: an invalid suite, or a config that is invalid or that this machine cannot run —
            before anything is measured or run.
    """
    out = Path(out_dir)
    cc = cfg.crosscheck
    if int(cc.repeats) < 1:
        raise ConfigError("crosscheck.repeats", f"must be >= 1, got {cc.repeats}")
    if not float(cc.tolerance) > 0:
        raise ConfigError("crosscheck.tolerance", f"must be > 0, got {cc.tolerance}")
    names = suite_names(cfg)
    extra = list(overrides)
    check_suite(names, extra)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    host = calibrate_host(cfg, out, say)
    rates = BlockRates(out / "calibration")
    tolerance = float(cc.tolerance)
    comparisons: list[Comparison] = []
    pairs: list[RunPair] = []
    for i, name in enumerate(names):
        if say:
            say(f"[{i + 1}/{len(names)}] {name}: timed model, then runtime")
        base = compose_config(config_overrides(name, host, extra))
        model, rate = model_overrides(base, rates)
        run_cfg = compose_config(config_overrides(name, host, extra, model))
        pair = run_pair(name, run_cfg, out, int(cc.repeats), rate)
        result = compare(name, pair.sim_summary, pair.runtime_summary, pair.sim_series, pair.runtime_series)
        comparisons.append(result)
        pairs.append(pair)
        if emit:
            emit(result.verdict(tolerance))
    parquet = out / "crosscheck.parquet"
    results_frame(comparisons).to_parquet(parquet, index=False)
    inputs = ReportInputs(
        suite=str(cc.name),
        host=host,
        pairs=pairs,
        tolerance=tolerance,
        load_before=load_before,
        load_after=os.getloadavg(),
        elapsed_s=time.perf_counter() - t0,
        cpus=os.cpu_count() or 1,
    )
    md, html = write_report(comparisons, inputs, out)
    return CrosscheckResult(comparisons, pairs, summary_line(comparisons), parquet, md, html)


def passed_overrides(task: Sequence[str]) -> list[str]:
    """The command line's overrides that apply to every config (not ``crosscheck`` nor ``hydra`` ones)."""
    keep = []
    for ov in task:
        key = ov.split("=", 1)[0].lstrip("+~")
        if key.split(".", 1)[0] in ("crosscheck", "hydra"):
            continue
        keep.append(ov)
    return keep


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="crosscheck")
def main(cfg: DictConfig) -> None:
    """Console entry point (``exo-crosscheck``)."""
    with user_errors():
        hc = HydraConfig.get()
        out = Path(hc.runtime.output_dir)
        show = bool(cfg.output.progress)

        def say(text: str) -> None:
            if show:
                print(text, file=sys.stderr, flush=True)

        result = run_crosscheck(cfg, out, passed_overrides(list(hc.overrides.task)), say,
                                lambda line: print(line, flush=True))
        print(f"-> {result.report_md}, {result.report_html}, {result.parquet}")
        print(result.line)


if __name__ == "__main__":
    sys.exit(main())
