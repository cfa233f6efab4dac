"""``exo-calibrate``: measure this host's links and codecs into ``~/.config/exo/hardware/calibrated/<name>.yaml``.

The chosen ``hardware`` profile is the template (which tiers, on which media, linked how); every link
is measured through the runtime's stores at ``runtime.calibrate.block_sizes_bytes``, and every codec's
throughput on this CPU. Load the result with ``hardware=calibrated/<name>`` in ``exo-sim``,
``exo-replay`` or ``exo-run`` (the user's config folder is on their search path;
``runtime.calibrate.out_dir`` writes elsewhere). Example::

    exo-calibrate hardware=ci_cpu runtime.calibrate.name=myhost
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from exo_runtime.calibrate import Calibration, calibrate
from exo_sim.cli.entry import CONF_DIR, setup, user_errors

setup()


def calibrate_to_dir(cfg: DictConfig, out_dir: str) -> Calibration:
    """Measure and write the profile; report progress on stderr when it is a terminal."""
    from pathlib import Path

    show = bool(cfg.output.progress) and sys.stderr.isatty()

    def progress(what: str) -> None:
        if show:
            print(f"measuring {what}", file=sys.stderr)

    return calibrate(cfg, Path(out_dir), progress)


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Console entry point (``exo-calibrate``)."""
    with user_errors():
        result = calibrate_to_dir(cfg, HydraConfig.get().runtime.output_dir)
        for lk in result.links:
            print(
                f"{lk['src']} <-> {lk['dst']}: {lk['bandwidth_gbps']:.3f} GB/s, {lk['latency_us']:.2f} us"
            )
        for codec, (enc, dec) in sorted(result.codecs.items()):
            print(f"{codec}: encode {enc:.3f} GB/s, decode {dec:.3f} GB/s")
        if result.prefill is not None:
            c, r = result.prefill.cost, result.prefill.residuals
            print(
                f"prefill ({result.prefill.payload} on {result.prefill.device}): a {c.a_s * 1e3:.3f} ms, "
                f"b {c.b_s_per_token * 1e6:.3f} us/token, c {c.c_s_per_token_pair * 1e9:.4f} ns/pair, "
                f"d {c.d_s_per_token * 1e6:.4f} us/cached token; relative error median {r.median:.3f}, "
                f"max {r.max:.3f}"
            )
        elif result.encode is not None:
            e = result.encode
            rates = ", ".join(f"{rate:.2f} chunks/s at k={k} t={t}" for k, t, rate in e.measured_chunks_per_s())
            print(
                f"encoder (all-MiniLM-L6-v2 on {e.device}, {e.threads} thread(s), {e.weights}; the cost does not "
                f"depend on the weights): a {e.cost.a_s * 1e3:.3f} ms/pass, b {e.cost.b_s_per_token * 1e6:.3f} "
                f"us/token, c {e.cost.c_s_per_token_pair * 1e9:.4f} ns/pair; relative error median "
                f"{e.residuals.median:.3f}, max {e.residuals.max:.3f}; measured {rates}"
            )
        else:
            print(result.prefill_note)
        print(f"wrote {result.path}; load it with hardware=calibrated/{result.name}")


if __name__ == "__main__":
    main()
