from generation.content.diffing import word_diff


def test_word_diff_marks_whole_words():
    assert word_diff("Council backs new bridge", "Council approves new bridge") == [
        ("same", "Council "),
        ("del", "backs"),
        ("ins", "approves"),
        ("same", " new bridge"),
    ]


def test_chinese_characters_diff_one_by_one():
    segments = word_diff("城市议会投票", "市议会投票通过")
    assert ("del", "城") in segments and ("ins", "通过") in segments
    assert "".join(t for op, t in segments if op != "del") == "市议会投票通过"
