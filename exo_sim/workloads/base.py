"""The workload interface: a stream of requests, delivered in columnar chunks.

A request reads a list of blocks (its context, in order) and may write new ones (its output). To
keep replays fast and memory flat, workloads yield :class:`RequestChunk` objects — numpy columns for a
few thousand requests at a time — never a whole trace.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from exo_sim.config import WorkloadConfig
from exo_sim.errors import ConfigError


@dataclass
class RequestChunk:
    """Consecutive requests, as columns.

    Attributes:
        arrival_s: arrival time of each request in seconds from the start, shape ``(n,)``.
        offsets: request ``i`` references ``blocks[offsets[i]:offsets[i + 1]]``, shape ``(n + 1,)``.
        blocks: block ids referenced, in order, shape ``(m,)`` int64.
        writes: ``True`` where the reference writes a new block (output) rather than reading one.
        tokens: tokens each reference carries (a partial last block carries fewer), shape ``(m,)``.
        next_access: global access index of each reference's next read of the same block
            (:data:`exo_sim.policies.NEVER` if none); present only when the trace carries it or
            the replay computed it.
        session_ids: the session (conversation) each request belongs to, shape ``(n,)`` int64, where
            the workload knows it (``agent_sessions``); ``None`` otherwise.
    """

    arrival_s: np.ndarray
    offsets: np.ndarray
    blocks: np.ndarray
    writes: np.ndarray
    tokens: np.ndarray
    next_access: np.ndarray | None = None
    session_ids: np.ndarray | None = None

    @classmethod
    def fixed_reads(
        cls,
        arrival_s: np.ndarray,
        blocks: np.ndarray,
        per_request: int,
        block_tokens: int,
        next_access: np.ndarray | None = None,
    ) -> RequestChunk:
        """Requests of ``per_request`` consecutive full-block reads each (the last may be shorter)."""
        m = int(blocks.shape[0])
        n = int(arrival_s.shape[0])
        return cls(
            arrival_s=arrival_s,
            offsets=np.minimum(np.arange(n + 1, dtype=np.int64) * per_request, m),
            blocks=blocks,
            writes=np.zeros(m, dtype=bool),
            tokens=np.full(m, block_tokens, dtype=np.int64),
            next_access=next_access,
        )

    @property
    def n_requests(self) -> int:
        """Requests in the chunk."""
        return int(self.arrival_s.shape[0])

    @property
    def n_refs(self) -> int:
        """Block references in the chunk."""
        return int(self.blocks.shape[0])


def require_positive(cfg: Any, *keys: str) -> None:
    """Refuse (``ConfigError`` on ``workload.<key>``) the first of ``keys`` that is not > 0."""
    for key in keys:
        value = getattr(cfg, key)
        if not value > 0:
            raise ConfigError(f"workload.{key}", f"must be > 0, got {value}")


class Workload(ABC):
    """A stream of requests for one config.

    Args:
        cfg: the workload's config (its dataclass, or a DictConfig with the same keys).
        block_tokens: tokens per block in the run.

    """

    kind: ClassVar[str] = ""
    schema: ClassVar[type[WorkloadConfig]] = WorkloadConfig
    has_future: ClassVar[bool] = False
    """Whether :meth:`chunks` fills ``next_access`` itself (oracleGeneral traces do)."""
    chained: ClassVar[bool] = False
    """Whether a request's read blocks form a chain (block ``i`` names the whole prefix up to it, so
    equal ids are equal prefixes): what prefix reuse needs. Mooncake's hash ids and agent sessions'
    contexts are chains; independent objects (Zipf, cache traces, RAG chunks) are not."""

    def __init__(self, cfg: Any, block_tokens: int) -> None:
        self.cfg = cfg
        self.block_tokens = block_tokens

    def validate(self) -> None:  # noqa: B027 - optional hook; most workloads override it
        """Refuse bad parameters or unreadable inputs before any work starts (raise ``ExoError``)."""

    @abstractmethod
    def chunks(self) -> Iterator[RequestChunk]:
        """Yield the requests in order, a chunk at a time; deterministic for a given config."""

    def estimated_refs(self) -> int | None:
        """How many block references :meth:`chunks` will yield, when known without reading it all."""
        return None

    def describe(self) -> dict[str, Any]:
        """A few facts for the summary (kind, source path, parameters)."""
        return {"kind": self.kind}

    def notes(self) -> list[str]:
        """Caveats the results must carry (e.g. a trace with no reuse information); none by default."""
        return []
