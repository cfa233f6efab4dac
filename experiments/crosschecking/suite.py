"""The suite: which configs, composed how, checked before any work, calibrated, then predicted and run.

A suite (``conf/crosscheck/<suite>.yaml``, ``crosscheck.configs``) names options of
``conf/experiment/crosscheck/``. Each is composed like any exo config (``experiment=crosscheck/<name>``
plus the command line's own overrides), and every one is validated — the timed model's checks and the
runtime's (media this machine lacks are refused here, with the runtime's sentence) — before the host
is calibrated or anything runs.

Then, per config:

1. **calibrate** — ``exo-calibrate`` has measured this host once for the suite (links, codecs, the
   payload's prefill compute: ``hardware=calibrated/<name>``); the engine's own costs around the
   prefill depend on the config's top tier, codec and block size, so they are measured for each
   config (:func:`~exo_runtime.engine.calibrate_engine.measure_engine`: scheduling, KV load, KV
   store, the engine's copies between tiers) and given as ``hardware.engine`` / link overrides;
2. **predict** — the same timed model ``exo-plan`` uses (``run_sim``) on that calibrated profile;
3. **measure** — ``exo-run``, the serving engine (``runtime.compute=model``: a real forward pass over
   the tiered KV), ``crosscheck.repeats`` times, keeping the run of median makespan.

Nothing of the run being predicted feeds the prediction. Results of both go under
``<out>/runs/<config>/{sim,runtime}/`` in the common schema.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from exo_runtime.calibrate import Calibration, calibrate
from exo_runtime.engine.calibrate_engine import EngineFigures, measure_engine
from exo_runtime.run import check_media, check_runtime_keys, run_runtime
from exo_sim.cli.entry import CONF_DIR
from exo_sim.errors import ConfigError
from exo_sim.results import write_results
from exo_sim.sim.run import prepare_sim, run_sim
from experiments.crosschecking.pair import RunPair

SUITE_DIR = Path(CONF_DIR) / "experiment" / "crosscheck"
"""Where the suite's configs live (``experiment=crosscheck/<name>``)."""

Say = Callable[[str], None]


@dataclass
class Host:
    """What calibration gave the cross-check: the profile names to compose with, and the figures."""

    profile: str
    conf_dir: Path | None
    calibration: Calibration | None

    def overrides(self) -> list[str]:
        """Overrides that put a config on the calibrated profile."""
        out = [f"hardware=calibrated/{self.profile}"]
        if self.conf_dir is not None:
            out.append(f"hydra.searchpath=[file://{self.conf_dir}]")
        return out


@contextmanager
def _hydra() -> Iterator[None]:
    """Compose inside the running app's Hydra, or open one on ``conf/`` (tests calling plain functions)."""
    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        yield


def compose_config(overrides: list[str]) -> DictConfig:
    """Compose ``conf/config.yaml`` with ``overrides``."""
    with _hydra():
        return compose(config_name="config", overrides=list(overrides))


def suite_names(cfg: Any) -> list[str]:
    """The suite's config names, each checked to exist in ``conf/experiment/crosscheck/``.

    Raises:
        ConfigError: an empty suite, or a name with no config file (naming ``crosscheck.configs[i]``).
    """
    names = [str(n) for n in cfg.crosscheck.configs]
    if not names:
        raise ConfigError("crosscheck.configs", "is empty; name options of conf/experiment/crosscheck/")
    known = sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))
    for i, name in enumerate(names):
        if name not in known:
            raise ConfigError(
                f"crosscheck.configs[{i}]",
                f"is {name!r}, which is not a config of conf/experiment/crosscheck/ ({', '.join(known)})",
            )
    if len(set(names)) != len(names):
        raise ConfigError("crosscheck.configs", f"names a config twice: {names}")
    return names


def check_suite(names: list[str], extra: list[str]) -> list[DictConfig]:
    """Compose and validate every config before any work (model and runtime checks alike).

    Raises:
        ExoError: the first config that is invalid or that this machine cannot run, with its reason.
    """
    out: list[DictConfig] = []
    for i, name in enumerate(names):
        cfg = compose_config([f"experiment=crosscheck/{name}", *extra])
        spec, _, _, _ = prepare_sim(cfg)
        check_runtime_keys(cfg.runtime)
        check_media(spec)
        if out and str(cfg.payload.name) != str(out[0].payload.name):
            raise ConfigError(
                f"crosscheck.configs[{i}]",
                f"is {name}, whose payload {cfg.payload.name} is not the suite's ({out[0].payload.name}, from "
                f"{names[0]}); a suite calibrates one payload's compute: put it in a suite of its own",
            )
        out.append(cfg)
    return out


def calibrate_host(cfg: Any, out: Path, first: DictConfig | None = None, say: Say | None = None) -> Host:
    """Measure this host (``exo-calibrate``) into the run's folder, or use ``crosscheck.profile``.

    ``first``: the suite's first config, composed; the host is calibrated with its hardware template,
    payload (the prefill compute is the payload's) and block size, and the suite's
    ``runtime.calibrate`` knobs.

    Raises:
        ConfigError: ``crosscheck.calibrate`` is off and no ``crosscheck.profile`` is given.
    """
    cc = cfg.crosscheck
    if not cc.calibrate:
        if not cc.profile:
            raise ConfigError("crosscheck.profile", "must name a calibrated profile when crosscheck.calibrate=false")
        return Host(str(cc.profile), None, None)
    conf = out / "conf"
    name = str(cc.calibration_name)
    base = first if first is not None else cfg
    cal_cfg = OmegaConf.merge(base, {"runtime": {"calibrate": OmegaConf.to_container(cfg.runtime.calibrate)}},
                              {"runtime": {"calibrate": {
        "name": name,
        "out_dir": str(conf / "hardware" / "calibrated"),
        "engine": False,  # it depends on each config's top tier, codec and block size: measured per config
    }}})
    if say:
        say(f"calibrating this host from hardware={base.hardware.name}, payload={base.payload.name} -> "
            f"{conf}/hardware/calibrated/{name}.yaml")
    t0 = time.perf_counter()
    result = calibrate(cal_cfg, out / "calibration", (lambda what: say(f"  measuring {what}")) if say else None)
    if say:
        say(f"calibrated in {time.perf_counter() - t0:.1f} s")
    return Host(name, conf, result)


def config_overrides(name: str, host: Host, extra: list[str], engine: list[str] | None = None) -> list[str]:
    """Everything composed for one config of the suite: its experiment, the serving engine
    (``runtime.compute=model``), the command line's overrides, the calibrated host and ``engine`` (the
    engine's figures measured for this config, :func:`engine_overrides`)."""
    return [f"experiment=crosscheck/{name}", "runtime.compute=model", *extra, *host.overrides(),
            "output.progress=false", *(engine or [])]


def engine_overrides(cfg: DictConfig, out: Path, say: Say | None = None) -> tuple[list[str], EngineFigures]:
    """Measure the engine's costs around the prefill for ``cfg`` on this host, as config overrides."""
    t0 = time.perf_counter()
    figures = measure_engine(cfg, out)
    if say:
        say(f"  engine measured in {time.perf_counter() - t0:.1f} s: schedule "
            f"{figures.schedule_s_per_block * 1e6:.2f} us/block, KV load {figures.load_block_s * 1e6:.1f} "
            f"us/block, KV store {figures.store_s_per_block * 1e6:.1f} us/block")
    return figures.overrides(), figures


def calibration_sources(cfg: DictConfig, host_calibrated: bool) -> dict[str, str]:
    """Which figures the model used are calibrated on this host and which are assumptions.

    ``host_calibrated``: the profile is ``exo-calibrate``'s (this run's, or a named calibrated one).
    """
    hw = cfg.hardware
    calibrated = "calibrated on this host"
    out = {
        "links (bandwidth, latency)": calibrated if host_calibrated else "assumption",
        "codec throughputs": calibrated if host_calibrated else "assumption",
        "prefill compute (a, b, c, d)": calibrated if hw.compute.prefill.a_s is not None else "assumption",
        "engine: schedule, KV load, KV store": calibrated if bool(hw.engine.calibrated) else "assumption",
        "arrivals": "the trace's timestamps (time-scaled), the same in both clocks",
        "policies, tiers, capacities, block size": "the config's own (both clocks run the one decision core)",
    }
    return out


def run_pair(name: str, cfg: DictConfig, out: Path, repeats: int, host_calibrated: bool = True) -> RunPair:
    """Run ``cfg`` through the timed model, then on the runtime ``repeats`` times; write both."""
    folder = out / "runs" / name
    sim = run_sim(cfg)
    frames = {"timeseries": sim.series.frame(sim.spec), "requests": sim.requests}
    write_results(folder / "sim", sim.summary, frames)
    runs = []
    for i in range(max(1, repeats)):
        target = folder / ("runtime" if repeats <= 1 else f"runtime-{i}")
        data = folder / f"data-{i}"
        run_cfg = OmegaConf.merge(cfg, {"runtime": {"data_dir": str(data)}})
        try:
            result = run_runtime(run_cfg, target)
        finally:
            shutil.rmtree(data, ignore_errors=True)
        if result.fault is not None:
            raise result.fault
        runs.append((float(result.summary["makespan_s"]), i, result))
    runs.sort(key=lambda r: (r[0], r[1]))
    _, _, chosen = runs[len(runs) // 2]
    return RunPair(
        name=name,
        sim_summary=sim.summary,
        sim_series=frames["timeseries"],
        sim_requests=sim.requests,
        runtime_summary=chosen.summary,
        runtime_series=chosen.series.frame(chosen.spec),
        runtime_requests=chosen.requests,
        runtime_makespans_s=[r[0] for r in sorted(runs, key=lambda r: r[1])],
        calibrated=calibration_sources(cfg, host_calibrated),
    )
