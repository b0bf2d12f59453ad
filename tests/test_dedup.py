"""The MinHash sketch and LSH band layout behind near-duplicate detection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_ita_plugin.data.dedup import (Deduplicator, DedupConfig, band_keys, jaccards, lsh_bands, minhashes,
                                      normalize_for_dedup, normalized_text_and_words, shingle_hash_sets, shingle_hashes,
                                      signature, signatures, word_shingle_hash_sets)


def _pair_with_jaccard(rng: np.random.Generator, shared: int, only_each: int) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted unique hash sets with ``shared`` common elements and ``only_each`` of their own each."""
    pool = np.unique(rng.integers(0, 2**32, shared + 2 * only_each + 50, dtype=np.uint32))
    pool = rng.permutation(pool)[: shared + 2 * only_each]
    common, a_own, b_own = pool[:shared], pool[shared : shared + only_each], pool[shared + only_each :]
    return np.sort(np.concatenate([common, a_own])), np.sort(np.concatenate([common, b_own]))


def test_minhash_estimates_the_jaccard_similarity():
    rng = np.random.default_rng(7)
    errors = []
    for shared, own in [(80, 10), (50, 25), (20, 40), (95, 2)]:
        for _ in range(60):
            a, b = _pair_with_jaccard(rng, shared, own)
            true = shared / (shared + 2 * own)
            sketch = minhashes([a, b], 64)
            errors.append(np.mean(sketch[0] == sketch[1]) - true)
    errors = np.array(errors)
    assert abs(errors.mean()) < 0.02  # unbiased
    assert np.sqrt(np.mean(errors**2)) < 0.08  # about sqrt(J(1-J)/64) for 64 permutations


def test_sketches_do_not_depend_on_how_rows_are_grouped():
    rng = np.random.default_rng(3)
    sets = [np.unique(rng.integers(0, 2**32, int(n), dtype=np.uint32)) for n in rng.integers(0, 200, 150)]
    sets[10] = sets[149] = np.zeros(0, dtype=np.uint32)  # empty rows, one of them last
    together = minhashes(sets, 64)
    alone = np.vstack([minhashes([s], 64) for s in sets])
    assert np.array_equal(together, alone)
    assert together.max() < 2**32
    assert np.array_equal(together[10], together[149])  # all empty texts look alike


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.8, 0.9])
def test_band_layout_finds_pairs_at_the_threshold_and_dissimilar_ones_as_theory_says(threshold):
    bands, rows = lsh_bands(threshold, 64)
    assert bands * rows <= 64
    rng = np.random.default_rng(int(threshold * 100))
    found_at_threshold = found_dissimilar = 0
    trials = 300
    for _ in range(trials):
        shared, own = int(round(100 * threshold)), int(round(50 * (1 - threshold)))  # J ~= threshold, a bit above
        a, b = _pair_with_jaccard(rng, shared, own)
        keys = band_keys(minhashes([a, b], 64), bands, rows)
        found_at_threshold += any(x == y for x, y in zip(*keys))
        c, d = _pair_with_jaccard(rng, 30, 45)  # J = 0.25
        keys = band_keys(minhashes([c, d], 64), bands, rows)
        found_dissimilar += any(x == y for x, y in zip(*keys))
    assert found_at_threshold / trials >= 0.97
    # a J=0.14 pair shares a band with probability 1 - (1 - J**rows)**bands if the hashes behave randomly
    expected = 1 - (1 - 0.25**rows) ** bands
    assert abs(found_dissimilar / trials - expected) < 0.07


def test_signatures_of_a_chunk_equal_one_at_a_time():
    convs = [[{"role": "user", "content": f"Domanda numero {i}?"},
              {"role": "assistant", "content": " ".join(f"parola{j % (i + 3)}" for j in range(i * 7))}] for i in range(90)]
    convs[5][1]["content"] = "!!!"  # no words at all
    assert signatures(convs) == [signature(c) for c in convs]
    assert signatures(convs, DedupConfig(near=False))[0].bands == ()


def test_ties_go_to_the_earliest_kept_conversation():
    base = " ".join(f"parola{i}" for i in range(60))
    first = [{"role": "user", "content": "Scrivi un elenco."}, {"role": "assistant", "content": base + " fine"}]
    second = [{"role": "user", "content": "Scrivi un elenco."}, {"role": "assistant", "content": base + " termine"}]
    third = [{"role": "user", "content": "Scrivi un elenco."}, {"role": "assistant", "content": base + " chiusura"}]
    dd = Deduplicator(DedupConfig(threshold=0.9))
    assert dd.check(0, signature(first)) is None
    dd._remember(1, signature(second))  # a second kept row exactly as similar to the next one
    dup = dd.check(2, signature(third))
    assert dup is not None and dup.of_index == 0 and dup.reason == "near_duplicate"


def test_shingles_are_order_sensitive():
    assert not np.array_equal(shingle_hashes("a b c d"), shingle_hashes("d c b a"))
    assert len(shingle_hashes("uno due")) == 1 and len(shingle_hashes("")) == 0


def test_shingles_of_many_texts_equal_one_text_at_a_time():
    texts = ["", "uno", "la casa è rossa e grande", "uno due", "  ", "a b c", "a b c a b c a b c", "x y"]
    together = shingle_hash_sets(texts)
    assert [len(s) for s in together] == [0, 1, 4, 1, 0, 1, 3, 1]
    for text, shingles in zip(texts, together):
        assert np.array_equal(shingles, shingle_hashes(text)) and shingles.dtype == np.uint32
        assert np.all(np.diff(shingles.astype(np.int64)) > 0)  # sorted, unique
    assert shingle_hash_sets([]) == []


def test_bad_sketch_size_is_a_config_error():
    from hf_ita_plugin.errors import ConfigError

    with pytest.raises(ConfigError, match="num_perm"):
        Deduplicator(DedupConfig(num_perm=0))
    assert Deduplicator(DedupConfig(near=False, num_perm=0)).check(0, signature([{"role": "user", "content": "x"}],
                                                                                DedupConfig(near=False))) is None


def test_jaccards_of_many_candidates_equal_set_arithmetic():
    rng = np.random.default_rng(11)
    for _ in range(400):
        mine = np.unique(rng.integers(0, 80, rng.integers(0, 40), dtype=np.uint32))
        others = [np.unique(rng.integers(0, 80, rng.integers(0, 40), dtype=np.uint32)) for _ in range(rng.integers(1, 8))]
        expected = []
        for other in others:
            union = set(mine.tolist()) | set(other.tolist())
            expected.append(len(set(mine.tolist()) & set(other.tolist())) / len(union) if union else 1.0)
        assert jaccards(mine.tobytes(), [o.tobytes() for o in others]) == pytest.approx(expected)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.fixed_dictionaries({"role": st.text(max_size=6), "content": st.text(max_size=40)}), max_size=4))
def test_normalised_words_are_the_normalised_text_split(messages):
    text, words = normalized_text_and_words(messages)
    assert text == normalize_for_dedup(messages) and words == text.split()
    assert [s.tolist() for s in word_shingle_hash_sets([words])] == [shingle_hashes(text).tolist()]
