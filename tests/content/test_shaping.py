import ast

import pytest

from generation.content.shaping import clean_headline, clean_prose, extract_code


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("1. City Approves New Bridge", "City Approves New Bridge"),
        ('"City Approves New Bridge"', "City Approves New Bridge"),
        ("**Headline:** City Approves New Bridge\n\nThis headline captures...", "City Approves New Bridge"),
        ("\n\n- “Council Says Yes to $40M Bridge”", "Council Says Yes to $40M Bridge"),
        ("Story: Council votes for bridge", "Council votes for bridge"),
        ("3) Bridge   plan  approved", "Bridge plan approved"),
        ("标题：市议会批准新桥", "市议会批准新桥"),
        ("", ""),
    ],
)
def test_clean_headline(raw, expected):
    assert clean_headline(raw) == expected


def test_code_comes_without_fences_or_chatter():
    raw = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nThis adds two numbers.\n```python\nprint(1)\n```"
    code = extract_code(raw)
    assert code == "def add(a, b):\n    return a + b"
    ast.parse(code)


def test_code_without_fence_or_with_unclosed_fence():
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1"
    assert extract_code("```js\nconst a = 1;\n") == "const a = 1;"


def test_prose_cut_by_the_token_limit_ends_at_a_sentence():
    text = "The bridge opens in May. It cost forty million dollars. Officials said the"
    assert clean_prose(text, truncated=True) == "The bridge opens in May. It cost forty million dollars."
    assert clean_prose(text, truncated=False) == text
    assert clean_prose("Summary: 桥梁将于五月开放。费用为四千万", truncated=True) == "桥梁将于五月开放。"


def test_trim_to_words_counts_chinese_characters():
    from generation.content.shaping import count_words, trim_to_words

    assert count_words("城市议会 approved it") == 6
    assert trim_to_words("桥梁将于五月开放。费用为四千万美元。", 12) == "桥梁将于五月开放。"
    assert trim_to_words("one two three four five six", 4) == "one two three four…"


def test_list_markers_and_dashes_are_not_words():
    from generation.content.shaping import count_words

    assert count_words("- one two\n- three — four") == 4
