"""Calibration of the engine's costs around the prefill: the fit on known coefficients, and a real
measurement on this host that a calibrated profile can carry."""

from __future__ import annotations

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from exo_runtime.engine.calibrate_engine import fit_call_and_block, measure_engine
from exo_sim.cli.entry import CONF_DIR, setup
from exo_sim.engine_costs import resolve_engine_costs


def test_fit_recovers_call_and_block_costs() -> None:
    call, block = 40e-6, 12.5e-6
    points = [(k, call + k * block) for k in (1, 4, 16, 64)]
    got = fit_call_and_block(points)
    assert got == pytest.approx((call, block), rel=1e-9)


def test_fit_never_goes_negative() -> None:
    # a negative intercept is refused: the line goes through the origin, least squares k.t / k.k
    points = [(1, 0.5e-6), (4, 9e-6), (16, 45e-6)]
    call, block = fit_call_and_block(points)
    assert call == 0.0
    assert block == pytest.approx((1 * 0.5e-6 + 4 * 9e-6 + 16 * 45e-6) / (1 + 16 + 256))
    # time that does not grow with the blocks is all per call
    assert fit_call_and_block([(1, 3e-6), (8, 2e-6)]) == pytest.approx((2.5e-6, 0.0))


def test_measured_figures_make_a_profile_section_the_model_accepts(tmp_path: object) -> None:
    setup()
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = compose("config", overrides=["payload=tiny_llama_kv", "hardware=ci_cpu", "block_tokens=64",
                                           "workload=agent_sessions", "codec=fp16"])
    figures = measure_engine(cfg, repeats=2)
    assert figures.top_medium == "shm" and figures.top_codec == "fp16"
    assert figures.block_bytes == 64 * 512 * 2  # 64 tokens x 512 KV elements x 2 bytes
    assert figures.scheduled_blocks > 0 and figures.schedule_s_per_block > 0
    assert figures.load_block_s > 0 and figures.store_block_s > 0
    section = yaml.safe_load("\n".join(figures.yaml_lines("host")))
    cfg.hardware.engine = OmegaConf.merge(cfg.hardware.engine, section["engine"])
    costs = resolve_engine_costs(cfg)
    assert costs.host_copies and costs.source == "calibrated"
    assert costs.load_s(1, 0) == pytest.approx(figures.load_block_s, rel=1e-3)
    # after the first token: the request's finishing time and its stored blocks, as exo-run spent them
    assert figures.requests_timed > 0 and figures.stored_block_s is not None
    expected = figures.finish_s + 2 * figures.store_s_per_block
    assert costs.store_s(2, 0) == pytest.approx(expected, rel=1e-3, abs=1e-9)
    assert costs.schedule_s(3) == pytest.approx(figures.request_s + 3 * figures.schedule_s_per_block, rel=1e-3, abs=1e-9)
