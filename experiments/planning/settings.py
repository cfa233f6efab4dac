"""The phase and the ``plan`` section, checked and resolved before any work starts.

Every value a type cannot check is refused here with a :class:`~exo_sim.errors.ConfigError` naming
its key: a target that is not positive, a next phase or a swept policy / codec option that does not
exist, counts that are not positive, a tolerance out of range, an audit option that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig

from exo_sim.codecs import CODECS
from exo_sim.config import CodecMixConfig, HardwareConfig, PayloadConfig, PhaseConfig, PolicyMixConfig
from exo_sim.errors import ConfigError
from exo_sim.spec import Locator
from experiments.planning.options import load_option, option_names


@dataclass(frozen=True)
class PlanSettings:
    """``cfg.phase`` and ``cfg.plan``, validated, with every option they name loaded (as DictConfigs)."""

    phase_name: str
    target_tokens: int
    next_phase: str | None
    next_target_tokens: int | None
    policies: dict[str, Any]
    codecs: dict[str, Any]
    size_workload: bool
    session_generations: int
    min_sessions: int
    zipf_reads_per_block: int
    sweep_live_tokens: int
    replay_live_tokens: int
    min_miniature_blocks: int
    max_overcommit: float
    p99_tolerance: float
    mrc_points: int
    sweep_jobs: int
    sweep_timeout_s: float
    pin_gbps: tuple[float, float]
    audit_hardware: Any
    audit_codec: Any
    audit_payloads: dict[str, Any]
    audit_claimed_tokens: dict[str, int]
    audit_claimed_reduction: dict[str, float]


def _options(
    fail: Any, key: str, names: Any, group: str, schema: type[Any], allow_empty: bool = False
) -> dict[str, DictConfig]:
    names = [str(n) for n in names]
    if not names and not allow_empty:
        raise fail(key, f"is empty; name at least one option of conf/{group}/")
    if len(set(names)) != len(names):
        raise fail(key, f"repeats an option: {names}")
    known = option_names(group)
    out: dict[str, DictConfig] = {}
    for i, name in enumerate(names):
        if name not in known:
            raise fail(f"{key}[{i}]", f"is {name!r}, not an option of conf/{group}/ ({', '.join(known)})")
        out[name] = load_option(group, name, schema)
    return out


def plan_settings(cfg: Any, locate: Locator | None = None) -> PlanSettings:
    """Check ``cfg.phase`` and ``cfg.plan`` and load every option they name.

    Raises:
        ConfigError: naming the first invalid key.
    """

    def fail(key: str, problem: str) -> ConfigError:
        where = None
        if locate:  # an item of a list set on the command line is found by the list's key
            where = locate(key) or locate(key.split("[", 1)[0])
        return ConfigError(key, problem, where)

    phase, p = cfg.phase, cfg.plan
    target = int(phase.target_tokens)
    if target <= 0:
        raise fail("phase.target_tokens", f"must be > 0, got {target}")
    next_name = None if phase.next_phase is None else str(phase.next_phase)
    next_target = None
    if next_name is not None:
        known = option_names("phase")
        if next_name not in known:
            raise fail("phase.next_phase", f"is {next_name!r}, not an option of conf/phase/ ({', '.join(known)})")
        next_target = int(load_option("phase", next_name, PhaseConfig).target_tokens)
    for key in (
        "session_generations",
        "min_sessions",
        "zipf_reads_per_block",
        "sweep_live_tokens",
        "replay_live_tokens",
        "min_miniature_blocks",
        "mrc_points",
    ):
        if int(p[key]) <= 0:
            raise fail(f"plan.{key}", f"must be > 0, got {p[key]}")
    if not float(p.max_overcommit) >= 1.0:
        raise fail("plan.max_overcommit", f"must be >= 1, got {p.max_overcommit}")
    if not 0.0 <= float(p.p99_tolerance) < 1.0:
        raise fail("plan.p99_tolerance", f"must be in [0, 1), got {p.p99_tolerance}")
    if int(p.sweep_jobs) == 0 or int(p.sweep_jobs) < -1:
        raise fail("plan.sweep_jobs", f"must be -1 (one per core) or > 0, got {p.sweep_jobs}")
    if not float(p.sweep_timeout_s) > 0:
        raise fail("plan.sweep_timeout_s", f"must be > 0, got {p.sweep_timeout_s}")
    low, high = float(p.pin_gbps_low), float(p.pin_gbps_high)
    if not 0 < low <= high:
        raise fail("plan.pin_gbps_low", f"and plan.pin_gbps_high must satisfy 0 < low <= high, got {low}, {high}")
    for name, value in p.audit_claimed_reduction.items():
        if name not in CODECS:
            raise fail(f"plan.audit_claimed_reduction.{name}", f"names no known codec ({', '.join(CODECS)})")
        if not 0.0 <= float(value) < 1.0:
            raise fail(f"plan.audit_claimed_reduction.{name}", f"must be a fraction in [0, 1), got {value}")
    for name, value in p.audit_claimed_tokens.items():
        if int(value) <= 0:
            raise fail(f"plan.audit_claimed_tokens.{name}", f"must be > 0, got {value}")

    policies = _options(fail, "plan.policies", p.policies, "policy", PolicyMixConfig)
    codecs = _options(fail, "plan.codecs", p.codecs, "codec", CodecMixConfig)
    audit_hw = _options(fail, "plan.audit_hardware", [p.audit_hardware], "hardware", HardwareConfig)
    audit_codec = _options(fail, "plan.audit_codec", [p.audit_codec], "codec", CodecMixConfig)
    payloads = _options(fail, "plan.audit_payloads", p.audit_payloads, "payload", PayloadConfig)
    hw = next(iter(audit_hw.values()))
    tiers = [str(t.name) for t in hw.tiers]
    for name in p.audit_claimed_tokens:
        if name not in tiers:
            raise fail(
                f"plan.audit_claimed_tokens.{name}",
                f"names no tier of {p.audit_hardware} (tiers: {', '.join(tiers)})",
            )
    return PlanSettings(
        phase_name=str(phase.name),
        target_tokens=target,
        next_phase=next_name,
        next_target_tokens=next_target,
        policies=policies,
        codecs=codecs,
        size_workload=bool(p.size_workload),
        session_generations=int(p.session_generations),
        min_sessions=int(p.min_sessions),
        zipf_reads_per_block=int(p.zipf_reads_per_block),
        sweep_live_tokens=int(p.sweep_live_tokens),
        replay_live_tokens=int(p.replay_live_tokens),
        min_miniature_blocks=int(p.min_miniature_blocks),
        max_overcommit=float(p.max_overcommit),
        p99_tolerance=float(p.p99_tolerance),
        mrc_points=int(p.mrc_points),
        sweep_jobs=int(p.sweep_jobs),
        sweep_timeout_s=float(p.sweep_timeout_s),
        pin_gbps=(low, high),
        audit_hardware=hw,
        audit_codec=next(iter(audit_codec.values())),
        audit_payloads=payloads,
        audit_claimed_tokens={str(k): int(v) for k, v in p.audit_claimed_tokens.items()},
        audit_claimed_reduction={str(k): float(v) for k, v in p.audit_claimed_reduction.items()},
    )
