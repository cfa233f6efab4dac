"""The timed sweep over policies x codec mixes, run by the existing engine: ``exo-sim -m``.

The plan starts ``python -m exo_sim.cli.sim -m policy=a,b,... codec=x,y,... <the plan's overrides>
hydra.sweep.dir=<report>/sweep`` as a subprocess: Hydra's launcher (joblib on this machine's cores,
``conf/hydra/launcher/cores.yaml``) runs the jobs in parallel and the sweep callback
(:class:`exo_sim.sweep.SweepGatherer`) gathers them into ``sweep.parquet`` — nothing here schedules a
job itself. The jobs repeat the plan's config exactly: its sections, resolved (with the workload's sizing
and the miniature's capacities), are written as options of a config folder in the report
(``--config-dir``) and chosen on the command line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from exo_sim.sweep import SWEEP_FILE

SECTIONS = ("hardware", "payload", "hierarchy", "workload", "sim")
"""Config groups whose resolved content the sweep's jobs take from the plan (``policy`` and ``codec`` are swept)."""

OPTION = "exo_plan_sweep"
"""The option name the plan's own sections are written under, in a config folder of the report."""


class SweepFailed(RuntimeError):
    """The ``exo-sim -m`` subprocess failed or timed out (a bug or a machine problem, not user input)."""


def write_sweep_config(cfg: Any, conf_dir: Path) -> list[str]:
    """Write ``cfg``'s sections as options of a config folder; return the overrides that choose them.

    Each of :data:`SECTIONS` becomes ``<conf_dir>/<group>/exo_plan_sweep.yaml``, resolved (sizing,
    miniature capacities, command-line overrides and interpolations included) and checked by its
    schema like any option; the top-level keys and the codec mix's group sizes follow as overrides.
    """
    out: list[str] = []
    for group in SECTIONS:
        node = OmegaConf.to_container(cfg[group], resolve=True)
        assert isinstance(node, dict)
        base = f"base_{cfg.workload.kind}" if group == "workload" else f"base_{group}"
        path = conf_dir / group / f"{OPTION}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(OmegaConf.to_yaml(OmegaConf.create({"defaults": [base, "_self_"], **node})))
        out.append(f"{group}={OPTION}")
    out += [f"block_tokens={int(cfg.block_tokens)}", f"seed={int(cfg.seed)}"]
    if cfg.capacity_blocks is not None:
        out.append(f"capacity_blocks={int(cfg.capacity_blocks)}")
    for key in ("int8_group_size", "int4_group_size", "scale_bytes"):
        out.append(f"codec.{key}={int(cfg.codec[key])}")
    out.append(f"output.timeseries_points={int(cfg.output.timeseries_points)}")
    return out


def sweep_command(
    policies: Sequence[str],
    codecs: Sequence[str],
    conf_dir: Path,
    overrides: Sequence[str],
    sweep_dir: Path,
    jobs: int,
) -> list[str]:
    """The ``exo-sim -m`` command line over ``policies`` x ``codecs`` with the plan's config folder."""
    return [
        sys.executable,
        "-m",
        "exo_sim.cli.sim",
        "-m",
        "--config-dir",
        str(conf_dir.resolve()),
        f"policy={','.join(policies)}",
        f"codec={','.join(codecs)}",
        *overrides,
        "output.progress=false",
        "sim.write_requests=true",
        f"hydra.sweep.dir={sweep_dir.resolve()}",
        f"hydra.launcher.n_jobs={jobs}",
    ]


def stop_group(proc: subprocess.Popen[str], grace_s: float = 5.0) -> None:
    """Stop ``proc``'s process group (the launcher and its workers): SIGTERM, then SIGKILL after ``grace_s``.

    The sweep runs in its own session, so a Ctrl-C at the terminal reaches only the plan; this passes it on.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        # the launcher is gone; its workers may outlive it a moment
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


def run_sweep(
    command: list[str],
    sweep_dir: Path,
    log_path: Path,
    timeout_s: float,
    on_job: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run ``command``, log its output to ``log_path`` and return the gathered ``sweep.parquet``.

    ``on_job`` is called with each job's one-line result as it finishes.

    Raises:
        SweepFailed: on a non-zero exit, a timeout, or no gathered table (with the log's last lines).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    timed_out = threading.Event()
    with open(log_path, "w") as log:
        log.write(" ".join(command) + "\n\n")
        log.flush()
        # its own session, so that a timeout stops the launcher's worker processes with it (they hold the pipe)
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )

        def stop() -> None:
            timed_out.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout_s, stop)
        timer.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                if on_job is not None and line.startswith("sim "):
                    on_job(line.strip())
            rc = proc.wait()
        except KeyboardInterrupt:
            stop_group(proc)
            raise
        finally:
            timer.cancel()
    table = sweep_dir / SWEEP_FILE
    if timed_out.is_set() or rc != 0 or not table.is_file():
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-15:])
        why = f"timed out after {timeout_s:g} s (plan.sweep_timeout_s)" if timed_out.is_set() else f"exit status {rc}"
        raise SweepFailed(f"the timed sweep failed ({why}); its log is {log_path}:\n{tail}")
    return pd.read_parquet(table)
