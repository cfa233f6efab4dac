"""The miniature serving engine: a real transformer forward pass whose KV cache lives in exo's tiers.

* :mod:`~exo_runtime.engine.model` — a Llama-style decoder of a payload's architecture with seeded
  random weights, one tensor-parallel rank's shard; prefill over a cached prefix; the KV block layout.
* :mod:`~exo_runtime.engine.loader` — feeding a cached prefix to prefill layer by layer (CUDA copy
  stream on a GPU, synchronous on the CPU).
* :mod:`~exo_runtime.engine.tokens` — token ids as a deterministic function of a block's chain.
* :mod:`~exo_runtime.engine.fit` — refusing a model this host cannot run in reasonable time or memory.
* :mod:`~exo_runtime.engine.encoder` and :mod:`~exo_runtime.engine.chunks` — RAG chunks' text and the
  sentence encoder that re-embeds a chunk on a miss.
"""
