"""The per-output figures of editor burden: TER as a ratio, and the percentiles."""

import pytest

from generation.content import burden

TEN = "the city council voted on tuesday to build a bridge"


def test_an_unedited_output_changed_nothing():
    assert burden.change_ratio(TEN, TEN) == 0.0


def test_one_word_of_ten_is_a_tenth():
    assert burden.change_ratio(TEN, TEN.replace("bridge", "tunnel")) == pytest.approx(0.1)


def test_a_moved_phrase_is_one_shift_not_a_rewrite():
    moved = "on tuesday the city council voted to build a bridge"
    assert burden.change_ratio(TEN, moved) == pytest.approx(0.1)


def test_a_capitalisation_fix_is_an_edit():
    assert burden.change_ratio(TEN, TEN.replace("tuesday", "Tuesday")) == pytest.approx(0.1)


def test_chinese_counts_characters_not_the_whole_sentence():
    """Without spaces a whitespace tokenizer sees one "word": any change would be 100%. TER with asian_support
    splits CJK characters (as sacrebleu's zh tokenizer does), so one character of 17 is about 6%."""
    original = "市议会周二投票决定在河上建一座新桥"
    assert burden.tokens(original) == list(original)
    assert burden.change_ratio(original, original.replace("二", "三")) == pytest.approx(1 / 17)
    assert burden.change_ratio(original + "。", original + "！") == pytest.approx(1 / 18)  # punctuation apart


def test_long_texts_skip_the_shift_search_and_stay_an_upper_bound():
    words = [f"w{i}" for i in range(200)]
    edited = list(words)
    edited[::10] = ["x"] * 20
    assert burden.change_ratio(" ".join(words), " ".join(edited)) == pytest.approx(0.1)
    moved = words[5:8] + words[:5] + words[8:]  # a three-word move: 1 shift with the search, 6 edits without
    assert burden.change_ratio(" ".join(words), " ".join(moved)) == pytest.approx(6 / 200)


def test_empty_texts():
    assert burden.change_ratio("", "new text") == 1.0
    assert burden.change_ratio("some words", "") == 1.0


def test_median_and_nearest_rank_percentile():
    values = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert burden.median(values) == 55.0
    assert burden.percentile(values, 0.9) == 90.0
    assert burden.percentile([5.0], 0.9) == 5.0
    assert burden.median([]) is None and burden.percentile([], 0.9) is None


def test_share_of_nothing_is_unknown_not_zero():
    assert burden.share(1, 4) == 0.25
    assert burden.share(0, 0) is None
