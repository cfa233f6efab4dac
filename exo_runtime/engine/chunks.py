"""RAG chunks' real text, drawn deterministically from a corpus that ships with Python.

A ``rag_chunk`` payload's block holds ``block_tokens / tokens_per_chunk`` chunks, each
``chunk_chars`` characters of text plus one embedding. In the runtime a chunk's text is real English
prose so that an encoder (:mod:`exo_runtime.engine.encoder`) re-embeds it as it would a document:

* **Corpus**: the Python reference documentation that CPython ships as ``pydoc_data.topics`` (the
  text behind ``help("if")`` and friends), topics in sorted order, folded to ASCII (NFKD, non-ASCII
  dropped), its tables' rule lines (``+----+``, ``====``) and cell bars (``|``) dropped, every
  whitespace run collapsed to one space (~414K characters on Python 3.11), then read as a ring.
  Where ``pydoc_data`` is missing (some distributions split it off) the docstrings of a fixed list of
  standard-library modules stand in. :func:`corpus` names the source with its Python version and a
  SHA-256 of the text: the same id gives the same text for one corpus (one Python version); another
  Python version may give other text.
* **Chunk id → text**: a splitmix64 hash of the id picks a start in the ring, moved forward to the
  next word's start; the chunk is the next ``chunk_chars`` characters (wrapping round the ring).
* **Raw bytes** (the block's text bytes): the text UTF-8 encoded — plain ASCII here, so one byte per
  character — then padded with NUL bytes or truncated to the chunk's byte count
  (``chunk_chars x text_bytes_per_char``). :func:`text_of_bytes` undoes it (drops the NUL padding).
* **Chunk ids of a block**: chunk ``j`` of block ``b`` is ``b x chunks_per_block + j``
  (:func:`block_chunk_ids`), so every chunk of every block has its own id.
"""

from __future__ import annotations

import functools
import hashlib
import re
import sys
import unicodedata
from dataclasses import dataclass

CHUNK_CHARS = 1024
"""The ``rag_chunk_minilm`` payload's characters per chunk."""

_MASK64 = (1 << 64) - 1
_STDLIB_FALLBACK = (
    "argparse",
    "collections",
    "csv",
    "dataclasses",
    "decimal",
    "email",
    "functools",
    "heapq",
    "http",
    "inspect",
    "itertools",
    "json",
    "logging",
    "os",
    "pathlib",
    "pickle",
    "re",
    "shutil",
    "socket",
    "string",
    "subprocess",
    "tarfile",
    "textwrap",
    "threading",
    "typing",
    "unittest",
    "urllib",
    "zipfile",
)


@dataclass(frozen=True)
class Corpus:
    """The text chunks are drawn from.

    Attributes:
        text: the normalised corpus (ASCII, single spaces).
        source: where it comes from, with the Python version.
        sha256: SHA-256 of ``text`` (hex), to tell one corpus from another.

    """

    text: str
    source: str
    sha256: str

    def describe(self) -> str:
        """One line: source, size and hash prefix."""
        return f"{self.source}, {len(self.text):,} chars, sha256 {self.sha256[:12]}"


_RULE_LINE = re.compile(r"(?m)^[ \t]*[-+=|~^*]{3,}[-+=|~^* \t]*$")
_CELL_BAR = re.compile(r"(?m)(?:^|(?<=\s))\|(?=\s|$)")


def _normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    folded = _CELL_BAR.sub(" ", _RULE_LINE.sub(" ", folded))
    return re.sub(r"\s+", " ", folded).strip()


@functools.cache
def corpus() -> Corpus:
    """The corpus (built once per process; see the module docstring)."""
    version = ".".join(str(v) for v in sys.version_info[:3])
    try:
        from pydoc_data.topics import topics

        raw = " ".join(topics[key] for key in sorted(topics))
        source = f"pydoc_data.topics (Python {version})"
    except ImportError:  # pragma: no cover - CPython ships pydoc_data; some distributions split it off
        import importlib

        parts = []
        for name in _STDLIB_FALLBACK:
            try:
                doc = importlib.import_module(name).__doc__
            except ImportError:
                continue
            if doc:
                parts.append(doc)
        raw = " ".join(parts)
        source = f"standard-library module docstrings (Python {version})"
    text = _normalise(raw)
    return Corpus(text=text, source=source, sha256=hashlib.sha256(text.encode("ascii")).hexdigest())


def _splitmix64(x: int) -> int:
    z = (x + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def chunk_text(chunk_id: int, chunk_chars: int = CHUNK_CHARS) -> str:
    """Chunk ``chunk_id``'s text: ``chunk_chars`` characters of the corpus (see the module docstring)."""
    if chunk_chars < 1:
        raise ValueError(f"chunk_chars must be >= 1, got {chunk_chars}")
    text = corpus().text
    size = len(text)
    start = _splitmix64(int(chunk_id) & _MASK64) % size
    if start and text[start - 1] != " ":
        space = text.find(" ", start)
        if space != -1 and space - start < 64:
            start = space + 1
    ring = text + " "
    out = []
    need = chunk_chars
    pos = start % len(ring)
    while need:
        piece = ring[pos : pos + need]
        out.append(piece)
        need -= len(piece)
        pos = 0
    return "".join(out)


def chunk_bytes(chunk_id: int, chunk_chars: int = CHUNK_CHARS, nbytes: int | None = None) -> bytes:
    """Chunk ``chunk_id``'s raw bytes: its text in UTF-8, NUL-padded or truncated to ``nbytes``.

    ``nbytes`` defaults to ``chunk_chars`` (one byte per character, as the corpus is ASCII).
    """
    data = chunk_text(chunk_id, chunk_chars).encode("utf-8")
    n = chunk_chars if nbytes is None else int(nbytes)
    return data[:n].ljust(n, b"\x00")


def text_of_bytes(data: bytes) -> str:
    """The text a chunk's raw bytes hold (NUL padding dropped; a character cut by truncation dropped)."""
    return bytes(data).rstrip(b"\x00").decode("utf-8", errors="ignore")


def block_chunk_ids(block: int, chunks_per_block: int) -> list[int]:
    """The ids of block ``block``'s chunks: ``block x chunks_per_block + j`` for ``j < chunks_per_block``."""
    base = int(block) * int(chunks_per_block)
    return [base + j for j in range(int(chunks_per_block))]


def block_texts(block: int, chunks_per_block: int, chunk_chars: int = CHUNK_CHARS) -> list[str]:
    """The texts of block ``block``'s chunks, in order."""
    return [chunk_text(c, chunk_chars) for c in block_chunk_ids(block, chunks_per_block)]
