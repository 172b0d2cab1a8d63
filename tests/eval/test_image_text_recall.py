"""Image–text Recall@k against values worked out by hand (scores chosen directly: captions are one-hot vectors,
so an image vector is its row of scores)."""

from __future__ import annotations

import numpy as np
import pytest

import embedsearch.metrics
from embedsearch.metrics import image_text_recall
from tests.encoders.tolerances import U_FP32, gamma


def _scores(rows: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Image vectors and caption vectors whose image x caption dot products are ``rows``: with one-hot captions
    each product has one non-zero term, so it is exact in any summation order and a tie is a true tie."""
    scores = np.array(rows, dtype=np.float32)
    return scores, np.eye(scores.shape[1], dtype=np.float32)


def test_hand_computed_recall_with_two_captions_for_one_image_and_a_tie():
    images, texts = _scores(
        [
            [0.1, 0.9, 0.5, 0.3],  # captions 0 and 1: caption 1 is best -> rank 0
            [0.8, 0.7, 0.6, 0.1],  # caption 2: two wrong captions above -> rank 2
            [0.2, 0.2, 0.2, 0.2],  # caption 3: three wrong ties count against -> rank 3
        ]
    )
    metrics = image_text_recall(images, texts, [[0, 1], [2], [3]], ks=(1, 2, 5))
    assert metrics == {
        "image_to_text_R@1": pytest.approx(1 / 3),
        "image_to_text_R@2": pytest.approx(1 / 3),
        "image_to_text_R@5": 1.0,
        # caption 0 -> image 0 scores 0.1 under 0.8 and 0.2: rank 2; caption 1 -> rank 0; caption 2 -> rank 0;
        # caption 3 -> image 2 scores 0.2 under image 0's 0.3: rank 1
        "text_to_image_R@1": 0.5,
        "text_to_image_R@2": 0.75,
        "text_to_image_R@5": 1.0,
    }


def test_a_caption_of_several_images_is_found_by_any_of_them():
    images, texts = _scores([[0.2, 0.9], [0.8, 0.1], [0.3, 0.5]])
    metrics = image_text_recall(images, texts, [[0], [0], [1]], ks=(1,))
    # caption 0 (images 0 and 1): image 1 is first; caption 1 (image 2): image 0 scores 0.9 above it
    assert metrics["text_to_image_R@1"] == 0.5
    # image 0 ranks caption 1 above its caption 0; images 1 and 2 find theirs first
    assert metrics["image_to_text_R@1"] == pytest.approx(2 / 3)


def test_identical_pairs_score_one_at_every_k():
    vectors = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    metrics = image_text_recall(vectors, vectors, [[i] for i in range(20)])
    assert set(metrics) == {f"{d}_R@{k}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)}
    assert set(metrics.values()) == {1.0}


def test_scoring_in_blocks_equals_scoring_at_once(monkeypatch):
    rng = np.random.default_rng(1)
    images, texts = rng.standard_normal((50, 6)), rng.standard_normal((30, 6))
    owners = [sorted({i % 30, int(rng.integers(30))}) for i in range(50)]
    whole = image_text_recall(images, texts, owners)
    # blocks and the whole are different float32 products of the same float32-rounded vectors; their recalls are
    # equal on any CPU only if no wrong candidate scores that close to a right one (see _far_from_ties)
    images_of = [[i for i, captions in enumerate(owners) if t in captions] for t in range(len(texts))]
    assert _far_from_ties(images, texts, owners) and _far_from_ties(texts, images, images_of)
    monkeypatch.setattr(embedsearch.metrics, "_BLOCK", 7)
    assert image_text_recall(images, texts, owners) == whole
    assert 0 < whole["image_to_text_R@1"] < whole["image_to_text_R@10"] < 1


def _far_from_ties(queries: np.ndarray, candidates: np.ndarray, relevant) -> bool:
    """True if, in float64, every query's best right candidate and every wrong one are further apart than two
    float32 computations of a score can be: rounding the vectors to float32 (2u |x||y|) plus a dot product of
    ``dim`` terms in any order (gamma_dim |x||y|), on each side."""
    exact = queries @ candidates.T
    scale = np.linalg.norm(queries, axis=1).max() * np.linalg.norm(candidates, axis=1).max()
    bound = 2 * (2 * U_FP32 + gamma(queries.shape[1])) * scale
    for row, right in zip(exact, relevant, strict=True):
        if np.abs(np.delete(row, right) - row[right].max()).min() <= bound:
            return False
    return True


@pytest.mark.parametrize(
    ("image_to_texts", "message"),
    [
        ([[0], []], "image 1 has no caption"),
        ([[0], [2]], "names caption 2, but there are 2 captions"),
        ([[0], [0]], "1 caption\\(s\\) have no image, e.g. caption 1"),
        ([[0]], "one caption list per image"),
    ],
)
def test_inconsistent_pairs_are_refused(image_to_texts, message):
    with pytest.raises(ValueError, match=message):
        image_text_recall(np.eye(2), np.eye(2), image_to_texts)
