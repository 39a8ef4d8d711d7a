import pytest

from generation.content.findings import Finding
from generation.content.language import language_finding, language_of


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The city council approved a new bridge.", "en"),
        ("市议会批准修建一座新桥。", "zh"),
        ("苹果公司发布iPhone 15", "zh"),
        ("The council approved 新桥", "en"),
        ("市議会は新しい橋の建設を承認した。", "ja"),
        ("시의회가 새 다리 건설을 승인했다.", "ko"),
        ("Le conseil municipal a approuvé un pont.", "en"),  # Latin script: told as English
        ("OK", None),
        ("是", None),
        ("2028 — $40m", None),
        ("", None),
    ],
)
def test_language_of(text, expected):
    assert language_of(text) == expected


def test_an_english_summary_of_a_chinese_source_is_a_finding():
    output = "The council approved a new bridge."
    finding = language_finding("市议会批准修建一座新桥，耗资4000万美元。", output)
    assert finding == Finding(
        "language", "language", 0, len(output), output, "Written in English; the source is in Chinese."
    )


def test_same_language_or_too_short_is_no_finding():
    assert language_finding("市议会批准修建一座新桥。", "市议会批准新桥") is None
    assert language_finding("The council approved a bridge.", "Council backs bridge") is None
    assert language_finding("市议会批准修建一座新桥。", "OK") is None
    assert language_finding("", "The council approved a bridge.") is None


def test_the_expected_language_wins_over_the_source():
    finding = language_finding("The council approved a bridge.", "Council backs bridge", expected="zh-hans")
    assert finding is not None and finding.reason == "Written in English; Chinese was asked for."
    assert language_finding("市议会批准修建一座新桥。", "Council backs bridge", expected="EN") is None
