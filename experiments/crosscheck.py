"""``exo-crosscheck``: the planner's timed model against the serving engine on a suite of configs.

``exo-calibrate`` measures this host into a calibrated profile (under the run's folder: links, codecs,
the payload's prefill compute), then for every config of the suite (``conf/crosscheck/<suite>.yaml``;
its configs are options of ``conf/experiment/crosscheck/``) the engine's own costs are measured, the
timed model ``exo-plan`` uses predicts the run, ``exo-run`` runs it, and the two are compared: hits
must be identical, time is the model's relative error. Writes ``crosscheck.parquet``,
``crosscheck_requests.parquet`` (every request's TTFT error), ``report.md`` and ``report.html`` (with
figures) into Hydra's run folder, prints one verdict per config and ends with the line ``hits
identical K/N; TTFT error median X%, p99 Y%; makespan error median Z%, worst W%`` (then, if the suite
misses ``crosscheck.targets``, which ones, and exits 1). See :mod:`experiments.crosschecking.suite`.

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
from experiments.crosschecking.compare import Comparison, compare_pair
from experiments.crosschecking.pair import RunPair
from experiments.crosschecking.report import ReportInputs, write_report, write_tables
from experiments.crosschecking.suite import (
    calibrate_host,
    check_suite,
    compose_config,
    config_overrides,
    engine_overrides,
    run_pair,
    suite_names,
)
from experiments.crosschecking.verdict import Targets, suite_errors, suite_misses, summary_line, verdict_line

setup()

Say = Callable[[str], None]


@dataclass
class CrosscheckResult:
    """What one cross-check produced: per-config comparisons, the summary line and the files written."""

    comparisons: list[Comparison]
    pairs: list[RunPair]
    line: str
    misses: list[str]
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
    targets = suite_targets(cc.targets)
    names = suite_names(cfg)
    extra = list(overrides)
    composed = check_suite(names, extra)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    host = calibrate_host(cfg, out, composed[0], say)
    comparisons: list[Comparison] = []
    pairs: list[RunPair] = []
    for i, name in enumerate(names):
        if say:
            say(f"[{i + 1}/{len(names)}] {name}: engine calibration, timed model, then exo-run")
        base = compose_config(config_overrides(name, host, extra))
        engine, _ = engine_overrides(base, out / "calibration", say)
        run_cfg = compose_config(config_overrides(name, host, extra, engine))
        pair = run_pair(name, run_cfg, out, int(cc.repeats), host.calibration is not None or bool(cc.profile))
        result = compare_pair(pair)
        comparisons.append(result)
        pairs.append(pair)
        if emit:
            emit(verdict_line(result, targets))
    parquet, _ = write_tables(comparisons, out, targets)
    inputs = ReportInputs(
        suite=str(cc.name),
        host=host,
        pairs=pairs,
        targets=targets,
        load_before=load_before,
        load_after=os.getloadavg(),
        elapsed_s=time.perf_counter() - t0,
        cpus=os.cpu_count() or 1,
    )
    md, html = write_report(comparisons, inputs, out)
    misses = suite_misses(suite_errors(comparisons), targets)
    return CrosscheckResult(comparisons, pairs, summary_line(comparisons), misses, parquet, md, html)


def suite_targets(node: Any) -> Targets:
    """``crosscheck.targets`` as :class:`Targets`, each refused in one sentence naming its key."""
    values = {}
    for name in ("ttft_median", "ttft_p99", "makespan", "makespan_median"):
        value = node[name]
        if not (isinstance(value, int | float) and 0 < float(value) < 10):
            raise ConfigError(f"crosscheck.targets.{name}", f"must be a fraction > 0 (0.10 is 10 %), got {value!r}")
        values[name] = float(value)
    return Targets(**values)


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
        if result.misses:
            print("targets missed: " + "; ".join(result.misses))
            sys.exit(1)


if __name__ == "__main__":
    sys.exit(main())
