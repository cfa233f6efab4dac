"""The report's section on what each codec costs in accuracy, beside its TTFT (see :mod:`.accuracy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from experiments.planning.accuracy import SEED_CAST
from experiments.planning.document import Document
from experiments.planning.units import seconds as _s

if TYPE_CHECKING:
    from experiments.planning.planner import Plan


def accuracy_section(doc: Document, plan: Plan) -> None:
    """Per codec its measured error, per swept mix its worst codec beside its best TTFT p99 and the budget."""
    acc = plan.accuracy
    if acc is None:
        return
    doc.heading("Codec accuracy")
    if not acc.measured:
        doc.paragraph(acc.note)
        return
    kv = acc.kind != "rag_chunk"
    how = (
        "K and V of every layer, captured on each text, stored token by token through each codec; relative "
        "error ||K'-K|| / ||K|| (with V), the mean cosine of a token's row with its original, and the relative "
        "change of the attention output softmax(QK'^T)V' per layer"
        if kv
        else "the documents' embeddings stored through each codec, then the top 10 documents of each query (its "
        "summary line) compared with fp32's: recall@10"
    )
    doc.paragraph(
        f"{acc.note} Corpus: {acc.corpus} of this Python's standard library (they ship with it). Measured: {how}. "
        f"`{SEED_CAST}` is the seed's INT8 \"compression\", a bare cast to int8 with no scale, beside exo's "
        f"per-group int8. Budget (plan.accuracy_budget): {acc.budget.describe(acc.kind)}."
    )
    if kv:
        header = ["codec", "K/V relative error", "K/V cosine", "attention output relative error"]
        rows = [
            [name, f"{a.kv_relative_error:.4f}", f"{a.kv_cosine:.5f}", f"{a.attention_relative_error:.4f}"]
            for name, a in acc.codecs.items()
        ]
    else:
        header = ["codec", "recall@10 against fp32"]
        rows = [[name, f"{a.recall_at_10:.3f}"] for name, a in acc.codecs.items()]
    doc.table(header, rows)
    if plan.ranking is None:
        return
    t = plan.ranking.table
    rec = str(plan.ranking.recommended.codec)
    mix_rows = []
    for name, m in acc.mixes.items():
        mine = t[t["codec"] == name]
        p99 = _s(float(mine["ttft_p99_s"].min())) if len(mine) else "-"
        mix_rows.append(
            [
                name + (" (recommended)" if name == rec else ""),
                p99,
                m.worst.codec,
                m.worst.describe(),
                "yes" if m.within_budget else "no",
            ]
        )
    doc.table(["codec mix", "best TTFT p99", "worst codec", "accuracy", "within budget"], mix_rows)
