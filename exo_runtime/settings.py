"""The runtime's settings, resolved once from the config into a frozen, checked object.

Every ``runtime.*`` key is documented on :class:`exo_sim.config.RuntimeConfig`; this module refuses a
bad value in one sentence naming the key (before any work starts) and hands the rest of the runtime
plain typed values instead of the raw config. The few root keys the runtime reads itself (``seed``,
``output.timeseries_points``, and the payload and codec parameters a durable tier's layout records) are
resolved alongside; the engine's model and the common summary still read the composed config.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from exo_runtime.integrity import INTEGRITY_MODES
from exo_sim.errors import ConfigError
from exo_sim.spec import Locator

COMPUTE_MODES = ("model", "seeded")
"""``runtime.compute``: the engine's model computes blocks, or seeded data stands in (no model)."""


@dataclass(frozen=True)
class RuntimeSettings:
    """``cfg.runtime``, checked, and the root keys the runtime reads itself.

    See :class:`exo_sim.config.RuntimeConfig` for each ``runtime.*`` key.

    Attributes:
        seed: ``seed``.
        timeseries_points: ``output.timeseries_points`` (occupancy samples per tier).
        payload: ``payload`` as plain data (a durable tier's layout records it).
        codec_params: the integer codecs' ``codec.int8_group_size``, ``codec.int4_group_size`` and
            ``codec.scale_bytes`` (a durable tier's layout records them).
    """

    data_dir: Path | None
    resume: bool
    staging_bytes: int | None
    codec_scratch_bytes: int
    telemetry_interval_s: float
    integrity: str
    manifest_interval_s: float
    file_spare_fraction: float
    pace_arrivals: bool
    prefault: bool
    file_io_threads: int
    codec_threads: int
    compute: str
    prefill_chunk_tokens: int
    seed: int
    timeseries_points: int
    payload: Mapping[str, Any]
    codec_params: Mapping[str, int]

    @property
    def persist(self) -> bool:
        """Whether durable tiers outlive the run (``runtime.data_dir`` is given), for a later resume."""
        return self.data_dir is not None

    @property
    def model(self) -> bool:
        """Whether the engine's model computes the blocks (``compute=model``)."""
        return self.compute == "model"


def check_runtime_keys(rc: Any, locate: Locator | None = None) -> None:
    """Refuse bad ``runtime.*`` values with one sentence naming the key."""

    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"runtime.{key}", problem, locate(f"runtime.{key}") if locate else None)

    if bool(rc.resume) and not rc.data_dir:
        raise fail(
            "resume",
            "is true but runtime.data_dir is not set, so there is no earlier run's data to reuse; "
            "set runtime.data_dir to the folder that run persisted into, or drop runtime.resume",
        )
    if rc.integrity not in INTEGRITY_MODES:
        raise fail("integrity", f"is {rc.integrity!r}, not one of {', '.join(INTEGRITY_MODES)}")
    compute = str(getattr(rc, "compute", "model"))
    if compute not in COMPUTE_MODES:
        raise fail("compute", f"is {compute!r}, not one of {', '.join(COMPUTE_MODES)}")
    if compute == "model" and rc.integrity == "full":
        raise fail(
            "integrity",
            "is full, which compares decoded blocks with regenerated birth data, but under "
            "runtime.compute=model a block's data is the model's output and is not regenerated; "
            "use runtime.integrity=checksum (every block used is checked) or runtime.compute=seeded",
        )
    for key in ("staging_bytes", "codec_scratch_bytes"):
        value = getattr(rc, key)
        if value is not None and int(value) <= 0:
            raise fail(key, f"must be > 0, got {value}")
    for key in ("telemetry_interval_s", "manifest_interval_s"):
        if float(getattr(rc, key)) <= 0:
            raise fail(key, f"must be > 0, got {getattr(rc, key)}")
    if int(rc.codec_threads) < 1:
        raise fail("codec_threads", f"must be >= 1, got {rc.codec_threads}")
    if int(rc.file_io_threads) < 1:
        raise fail("file_io_threads", f"must be >= 1, got {rc.file_io_threads}")
    if int(getattr(rc, "prefill_chunk_tokens", 4096)) < 1:
        raise fail("prefill_chunk_tokens", f"must be >= 1, got {rc.prefill_chunk_tokens}")
    if not 0 <= float(rc.file_spare_fraction) <= 1:
        raise fail("file_spare_fraction", f"must be between 0 and 1, got {rc.file_spare_fraction}")


def _plain(node: Any) -> dict[str, Any]:
    """A config node (or its dataclass) as plain data."""
    data = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else vars(node)
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}


def resolve_settings(cfg: Any, locate: Locator | None = None) -> RuntimeSettings:
    """Check ``cfg.runtime`` (:func:`check_runtime_keys`) and resolve it into :class:`RuntimeSettings`.

    Args:
        cfg: the composed root config (``runtime``, ``seed``, ``output``, ``payload`` and ``codec``).
        locate: names the origin of a config key in error messages.

    Raises:
        ConfigError: a bad ``runtime.*`` value, naming the key (and its file and line where known).
    """
    rc = cfg.runtime
    check_runtime_keys(rc, locate)
    mix = cfg.codec
    return RuntimeSettings(
        data_dir=Path(str(rc.data_dir)) if rc.data_dir else None,
        resume=bool(rc.resume),
        staging_bytes=None if rc.staging_bytes is None else int(rc.staging_bytes),
        codec_scratch_bytes=int(rc.codec_scratch_bytes),
        telemetry_interval_s=float(rc.telemetry_interval_s),
        integrity=str(rc.integrity),
        manifest_interval_s=float(rc.manifest_interval_s),
        file_spare_fraction=float(rc.file_spare_fraction),
        pace_arrivals=bool(rc.pace_arrivals),
        prefault=bool(rc.prefault),
        file_io_threads=int(rc.file_io_threads),
        codec_threads=int(rc.codec_threads),
        compute=str(getattr(rc, "compute", "model")),
        prefill_chunk_tokens=int(getattr(rc, "prefill_chunk_tokens", 4096)),
        seed=int(cfg.seed),
        timeseries_points=int(cfg.output.timeseries_points),
        payload=_plain(cfg.payload),
        codec_params={
            "int8_group_size": int(mix.int8_group_size),
            "int4_group_size": int(mix.int4_group_size),
            "scale_bytes": int(mix.scale_bytes),
        },
    )


__all__ = ["COMPUTE_MODES", "RuntimeSettings", "check_runtime_keys", "resolve_settings"]
