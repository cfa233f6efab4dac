"""When the model's weights do not fit the GPU tier: what would, and which option the plan goes on with.

``build_spec`` refuses a config whose ``cuda`` tier has no room for one batch of KV beside the
weights and the workspace (:class:`~exo_sim.kv_budget.WeightsDoNotFit`). ``exo-plan`` does not stop
there: it reports the options (weights at a lower precision, more tensor-parallel ranks, a larger
GPU, each with its KV budget in tokens) and continues with the first one that fits on the profile's
own GPU (a lower precision), or, failing that, with the fewest tensor-parallel ranks (GPUs like this
one). A larger GPU is another hardware profile: it is reported, never chosen.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from exo_sim.kv_budget import FitOption, KvBudget, WeightsDoNotFit
from exo_sim.spec import Locator, build_spec


@dataclass(frozen=True)
class WeightsFit:
    """The configured weights did not fit tier ``tier``; the options, and the one the plan took."""

    tier: str
    payload: str
    budget: KvBudget
    options: tuple[FitOption, ...]
    chosen: FitOption

    def sentences(self) -> list[str]:
        """The summary's account, plain words with the arithmetic."""
        b = self.budget
        what = "; ".join(
            f"{o.label}: {o.kv_tokens:,} tokens of KV ({o.budget.kv_budget_bytes / 1e9:.2f} GB)" for o in self.options
        )
        how = " ".join(f"`{a}`" for a in self.chosen.override_args())
        return [
            f"**The configured weights do not fit.** {self.payload}'s {b.weight_dtype} weights on tier {self.tier}: "
            f"{b.arithmetic()} - no room for its KV cache.",
            f"What would fit: {what}.",
            f"This plan continues with **{self.chosen.label}** ({how}): every figure below is for that "
            f"configuration ({self.chosen.budget.arithmetic()}).",
        ]


def _apply(cfg: Any, overrides: tuple[tuple[str, Any], ...]) -> DictConfig:
    out = copy.deepcopy(cfg)
    for key, value in overrides:
        OmegaConf.update(out, key, value, merge=False)
    return out  # type: ignore[no-any-return]


def fit_weights(cfg: Any, locate: Locator | None = None) -> tuple[Any, WeightsFit | None]:
    """``cfg`` unchanged when its weights fit; otherwise the first fitting option applied, and why.

    Raises:
        WeightsDoNotFit: when no option fits but another GPU (nothing the plan can configure).
        ConfigError: for any other invalid key (as :func:`~exo_sim.spec.build_spec`).
    """
    try:
        build_spec(cfg, locate)
        return cfg, None
    except WeightsDoNotFit as err:
        choice = next((o for o in err.options if o.on_given_hardware), None)
        choice = choice or next((o for o in err.options if o.overrides), None)
        if choice is None:
            raise
        fitted = _apply(cfg, choice.overrides)
        return fitted, WeightsFit(err.tier, str(cfg.payload.name), err.budget, tuple(err.options), choice)
