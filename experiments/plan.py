"""``exo-plan``: the planning report for a growth phase (``exo-plan phase=1m``).

For the chosen hardware profile, payload and workload (``conf/plan.yaml``: the root config with the
``agent_sessions`` workload and the ``plan`` knobs), writes into Hydra's run folder ``report.md``,
``report.html``, ``plan.json`` and the figures beside them, and the timed sweep under ``sweep/``.
See :mod:`experiments.planning.planner` for what it computes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from exo_sim.cli.entry import CONF_DIR, interrupts, make_locator, setup, user_errors
from experiments.planning.planner import Plan, make_plan, print_line
from experiments.planning.sweep import SweepFailed

setup()


def plan_to_dir(cfg: DictConfig, out_dir: str | Path, progress: bool | None = None) -> Plan:
    """Validate ``cfg``, compute the plan and write the report into ``out_dir``.

    Args:
        cfg: the composed config (``conf/plan.yaml``'s).
        out_dir: the report's folder.
        progress: print one line per stage on stderr (default: ``output.progress``).

    Raises:
        ExoError: on invalid input, before any work starts.
    """
    show = bool(cfg.output.progress) if progress is None else progress
    return make_plan(cfg, out_dir, make_locator(), print_line if show else None)


def kept_files(out: Path) -> str:
    """What an interrupted plan left in ``out``: the files there (a stopped sweep's finished jobs among them)."""
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    kept = ", ".join(names) if names else "nothing"
    return f"no report was written and no sweep job is left running; kept in {out}: {kept}"


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="plan")
def main(cfg: DictConfig) -> None:
    """Console entry point (``exo-plan``)."""
    out = Path(HydraConfig.get().runtime.output_dir)
    with user_errors(), interrupts(lambda: kept_files(out)):
        try:
            plan = plan_to_dir(cfg, out)
        except SweepFailed as err:  # not the user's input: say where the log is, without a traceback
            print(f"error: {err}", file=sys.stderr)
            sys.exit(1)
        if plan.ranking is not None:
            r = plan.ranking.recommended
            head = (
                f"recommended policy={r.policy} codec={r.codec} (TTFT p99 {r.ttft_p99_s:.4g} s, "
                f"p50 {r.ttft_p50_s:.4g} s); {plan.bottleneck}"
            )
        else:
            head = plan.skip_reason
        print(f"plan {plan.settings.phase_name} on {plan.hardware}/{plan.payload}: {head}")
        print(f"-> {out / 'report.md'}, {out / 'report.html'}")


if __name__ == "__main__":
    sys.exit(main())
