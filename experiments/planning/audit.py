"""The audit of the seed workstation's published claims against what exo computes.

The replaced system published per-tier "token capacities" (256K / 256K / 1M / 10M tokens for VRAM /
shared / RAM / NVMe) and "INT8 = 50 %, FP16 = 25 % reduction". Both were typed, never derived. Here
each shipped payload is sized on the seed workstation's bytes under its codec mix (INT8 / INT8 /
FP16 / FP32) with the codecs' exact byte math (scales counted), and each codec's saving is measured
on a whole block against FP32 and FP16. The VRAM tier holds a KV-cache payload's KV budget, not its
8 GB: the model's weights (as configured, bf16 for the shipped payloads) and workspace come first
(:mod:`exo_sim.kv_budget`), and where they do not fit the tier holds no KV at all.

The claims count KV-cache tokens, so only KV-cache payloads are compared with them: a RAG chunk's
"tokens" are text tokens stored as raw bytes plus one embedding, not comparable, and its rows carry
no claim (its codec savings are still reported). The report shows the audit only for the audited
profile itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from exo_sim.codecs import CODECS
from exo_sim.kv_budget import gpu_of, kv_budget
from exo_sim.payloads import block_content
from exo_sim.spec import block_bytes
from experiments.planning.capacity import uniform_mix
from experiments.planning.settings import PlanSettings


@dataclass(frozen=True)
class ClaimRow:
    """One tier of one payload: the computed capacity against the claimed one."""

    payload: str
    tier: str
    codec: str
    capacity_bytes: int
    block_bytes: int
    blocks: int
    tokens: int
    claimed_tokens: int | None
    kv_budget_bytes: int | None = None  # a GPU tier serving the model: what its weights leave

    @property
    def weights_do_not_fit(self) -> bool:
        """Whether the model's weights and workspace leave the tier no KV at all."""
        return self.kv_budget_bytes is not None and self.kv_budget_bytes < self.block_bytes

    @property
    def ratio(self) -> float | None:
        """Computed over claimed tokens (``None`` when nothing was claimed for the tier)."""
        return self.tokens / self.claimed_tokens if self.claimed_tokens else None


@dataclass(frozen=True)
class ReductionRow:
    """One codec's real saving on one payload's block, against FP32 and FP16."""

    payload: str
    codec: str
    block_bytes: int
    reduction_vs_fp32: float
    reduction_vs_fp16: float
    claimed: float | None


@dataclass
class Audit:
    """The audit's tables and the plain statements drawn from them."""

    hardware: str
    mix: str
    block_tokens: int
    claims: list[ClaimRow] = field(default_factory=list)
    reductions: list[ReductionRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statements: list[str] = field(default_factory=list)


def comparable(payload: Any) -> bool:
    """Whether ``payload``'s tokens are KV-cache tokens, the unit the seed's capacity claims count."""
    return str(payload.kind) == "kv_cache"


def _payload_ok(payload: Any, block_tokens: int) -> str | None:
    if payload.kind == "rag_chunk" and block_tokens % int(payload.tokens_per_chunk):
        return (
            f"{payload.name} is left out: block_tokens={block_tokens} is not a multiple of its "
            f"{payload.tokens_per_chunk}-token chunks"
        )
    return None


def run_audit(settings: PlanSettings, block_tokens: int) -> Audit:
    """Size every audited payload on the audited profile and codec mix; compare with the claims."""
    hw, mix = settings.audit_hardware, settings.audit_codec
    out = Audit(hardware=str(hw.name), mix=str(mix.name), block_tokens=block_tokens)
    claimed = settings.audit_claimed_tokens
    for name, payload in settings.audit_payloads.items():
        why = _payload_ok(payload, block_tokens)
        if why:
            out.skipped.append(why)
            continue
        content = block_content(payload, block_tokens)
        for tier in hw.tiers:
            codec = str(mix.per_tier.get(tier.name, mix.default))
            bb = block_bytes(content, codec, mix)
            cap = int(tier.capacity_bytes)
            budget = kv_budget(cap, gpu_of(hw), payload) if tier.medium == "cuda" else None
            room = cap if budget is None else max(0, budget.kv_budget_bytes)
            blocks = room // bb
            claim = claimed.get(tier.name) if comparable(payload) else None
            out.claims.append(
                ClaimRow(name, str(tier.name), codec, cap, bb, blocks, blocks * block_tokens, claim,
                         None if budget is None else budget.kv_budget_bytes)
            )
        sizes = {c: block_bytes(content, c, uniform_mix(mix, c)) for c in CODECS}
        for codec, bb in sizes.items():
            out.reductions.append(
                ReductionRow(
                    name,
                    codec,
                    bb,
                    1.0 - bb / sizes["fp32"],
                    1.0 - bb / sizes["fp16"],
                    settings.audit_claimed_reduction.get(codec),
                )
            )
    out.statements = _statements(out, settings)
    return out


MATCH = 0.02
"""A claimed reduction within 2 points of a computed one is said to match it."""


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _span(values: list[float]) -> str:
    return _pct(values[0]) if len(values) == 1 else f"{_pct(values[0])} to {_pct(values[-1])}"


def _statements(a: Audit, settings: PlanSettings) -> list[str]:
    lines = []
    by_tier: dict[str, list[ClaimRow]] = {}
    for row in a.claims:
        if row.claimed_tokens is None:  # no claim, or a payload the claims do not count
            continue
        by_tier.setdefault(row.tier, []).append(row)
    for tier, rows in by_tier.items():
        claim = rows[0].claimed_tokens
        if claim is None:
            continue
        parts = ", ".join(
            f"{r.payload} {r.tokens:,} ({r.ratio:.2f}x{', its weights do not fit' if r.weights_do_not_fit else ''})"
            for r in rows
        )
        held = [r.payload for r in rows if r.tokens >= claim]
        if not held:
            verdict = "no audited payload reaches it"
        elif len(held) == len(rows):
            verdict = "every audited payload reaches it"
        else:
            verdict = f"only {' and '.join(held)} reach{'es' if len(held) == 1 else ''} it"
        lines.append(
            f"**{tier}** (claimed {claim:,} tokens, stored as {rows[0].codec}): exo computes {parts}; {verdict}."
        )
    kv = [r for r in a.reductions if r.payload in settings.audit_payloads and
          settings.audit_payloads[r.payload].kind == "kv_cache"]
    rag = [r for r in a.reductions if r.payload in settings.audit_payloads and
           settings.audit_payloads[r.payload].kind == "rag_chunk"]
    for codec, claimed_cut in settings.audit_claimed_reduction.items():
        if kv:
            vs32 = sorted({round(r.reduction_vs_fp32, 4) for r in kv if r.codec == codec})
            vs16 = sorted({round(r.reduction_vs_fp16, 4) for r in kv if r.codec == codec})
            text = (
                f"**{codec.upper()}** (claimed {_pct(claimed_cut)} reduction): on a KV-cache block it saves "
                f"{_span(vs32)} against FP32"
            )
            if CODECS[codec].bits_per_element < 16:
                text += f" and {_span(vs16)} against FP16, scales counted"
            matches = [base for base, vals in (("FP32", vs32), ("FP16", vs16)) if abs(vals[0] - claimed_cut) <= MATCH]
            if codec in ("fp16", "bf16"):
                matches = [m for m in matches if m != "FP16"]
            text += (
                f"; the claim matches it only against {matches[0]}." if matches else "; the claim matches no baseline."
            )
            lines.append(text)
        for r in rag:
            if r.codec == codec:
                also = f", {_pct(r.reduction_vs_fp16)} against FP16" if CODECS[codec].bits_per_element < 16 else ""
                lines.append(
                    f"**{codec.upper()}** on {r.payload} (the chunk text is stored as is, only the embedding is "
                    f"encoded): {_pct(r.reduction_vs_fp32)} against FP32{also}."
                )
    return lines
