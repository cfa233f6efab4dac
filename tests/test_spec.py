"""Bad configs are refused by build_spec with one sentence naming the key."""

from __future__ import annotations

import pytest

from exo_sim.errors import ConfigError
from exo_sim.spec import build_spec


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (["policy.default=nope"], "policy.default", "not a known policy"),
        (["policy.per_tier.ram=nope"], "policy.per_tier.ram", "not a known policy"),
        (["codec.default=fp7"], "codec.default", "not a known codec"),
        (["hardware.tiers.0.medium=gpu"], "hardware.tiers[0].medium", "not one of cuda"),
        (["payload.kind=weights"], "payload.kind", "not one of kv_cache"),
        (["hardware=ci_small", "hardware.tiers.1.capacity_bytes=0"], "hardware.tiers[1].capacity_bytes", "must be > 0"),
        (["hardware=ci_small", "hardware.tiers.1.capacity_bytes=-5"], "hardware.tiers[1].capacity_bytes", "must be > 0"),
        (["hardware=ci_small", "hardware.tiers.0.capacity_bytes=1000"], "hardware.tiers[0].capacity_bytes", "smaller than one block"),
        (["hierarchy.low_watermark=0.9", "hierarchy.high_watermark=0.5"], "hierarchy.low_watermark", "0 < low <= high <= 1"),
        (["hierarchy.low_watermark=0"], "hierarchy.low_watermark", "0 < low <= high <= 1"),
        (["hierarchy.high_watermark=1.5"], "hierarchy.high_watermark", "0 < low <= high <= 1"),
        (["hierarchy.mode=inclusive"], "hierarchy.mode", "not one of exclusive"),
        (["hardware=ci_small", "hardware.links.0.dst=gpu2"], "hardware.links[0].dst", "does not have"),
        (["hardware=ci_small", "hardware.links.0.bandwidth_gbps=0"], "hardware.links[0].bandwidth_gbps", "must be > 0"),
        (["hardware=ci_small", "hardware.links.1.latency_us=-1"], "hardware.links[1].latency_us", "must be > 0"),
        (["block_tokens=0"], "block_tokens", "must be > 0"),
        (["payload=rag_chunk_minilm", "block_tokens=100"], "block_tokens", "multiple of"),
        (["payload.layers=0"], "payload.layers", "must be > 0"),
        (["experiment=single_tier", "capacity_blocks=0"], "hardware.tiers[0].capacity_blocks", "must be > 0"),
    ],
)
def test_bad_config_names_key(make_cfg, overrides, key, fragment) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as err:
        build_spec(make_cfg(*overrides))
    assert err.value.key == key
    message = str(err.value)
    assert f"`{key}`" in message and fragment in message
    assert "\n" not in message


def test_zero_room_tier_is_bypassed_and_said(make_cfg) -> None:  # type: ignore[no-untyped-def]
    # ci_small's vram (a KV pool) holds 268,435,456 // 17,039,360 = 15 int8 blocks; a 0.001 high
    # watermark leaves room for none
    spec = build_spec(make_cfg("hardware=ci_small", "+hardware.tiers.0.high_watermark=0.001",
                               "+hardware.tiers.0.low_watermark=0.001"))
    assert not spec.tiers[0].usable and spec.tiers[1].usable
    assert any("vram is bypassed" in n for n in spec.notes)


def test_per_tier_override_for_absent_tier_is_noted(make_cfg) -> None:  # type: ignore[no-untyped-def]
    spec = build_spec(make_cfg("hardware=ci_cpu"))  # seed_mix names vram, which ci_cpu lacks
    assert [t.codec for t in spec.tiers] == ["int8", "fp16", "fp32"]
    assert any("codec.per_tier.vram is unused" in n for n in spec.notes)
