import pytest

from generation.content.findings import Finding
from generation.content.style import (
    Banned,
    InvalidStyle,
    StyleRules,
    apply,
    lint,
    names_from,
    parse,
    prompt_lines,
)

FULL = {
    "banned": [{"phrase": "slams", "replacement": "criticises"}, {"phrase": "shocking"}],
    "spelling": "uk",
    "headline_case": "sentence",
    "headline_max_chars": 70,
    "numerals": "spell_one_to_nine",
    "chinese_punctuation": "full_width",
}


def rules(**data) -> StyleRules:
    return parse(data)


def spans(findings: list[Finding]) -> list[tuple]:
    return [(f.rule, f.start, f.end, f.text, f.replacement) for f in findings]


def errors_of(data) -> dict[str, list[str]]:
    with pytest.raises(InvalidStyle) as caught:
        parse(data)
    return caught.value.errors


# --- parse ---------------------------------------------------------------------------------------------------------


def test_no_rules_is_the_empty_style():
    assert parse(None) == parse({}) == StyleRules()
    assert StyleRules().as_json() == {}


def test_rules_round_trip_through_json():
    parsed = parse(FULL)
    assert parsed.banned == (Banned("slams", "criticises"), Banned("shocking"))
    assert parsed.as_json() == FULL
    assert parse(parsed.as_json()) == parsed


def test_phrases_are_stored_stripped():
    assert parse({"banned": [{"phrase": "  slams ", "replacement": " criticises "}]}).banned == (
        Banned("slams", "criticises"),
    )


def test_unknown_rules_are_named():
    errors = errors_of({"spelling": "uk", "colour_scheme": "dark", "tone": "warm"})
    assert set(errors) == {"colour_scheme", "tone"}
    assert "Unknown rule" in errors["tone"][0]


def test_rules_must_be_an_object():
    assert errors_of(["banned"]) == {"": ["Must be an object."]}


def test_banned_errors_name_the_item_and_field():
    errors = errors_of(
        {
            "banned": [
                {"phrase": "slams"},
                "shocking",
                {"phrase": "   "},
                {"phrase": "ok", "note": "x"},
                {"phrase": "SLAMS"},
                {"phrase": "rips into", "replacement": "slams hard"},
                {"phrase": "big", "replacement": 3},
            ]
        }
    )
    assert set(errors) == {
        "banned.1",
        "banned.2.phrase",
        "banned.3",
        "banned.4.phrase",
        "banned.5.replacement",
        "banned.6.replacement",
    }
    assert "note" in errors["banned.3"][0]
    assert errors["banned.4.phrase"] == ["Already banned at banned.0."]
    assert '"slams"' in errors["banned.5.replacement"][0]


def test_banned_must_be_a_list():
    assert set(errors_of({"banned": {"phrase": "slams"}})) == {"banned"}


@pytest.mark.parametrize(
    "key, value",
    [
        ("spelling", "british"),
        ("spelling", ["uk"]),
        ("headline_case", "upper"),
        ("numerals", "words"),
        ("chinese_punctuation", "half_width"),
        ("headline_max_chars", "70"),
        ("headline_max_chars", True),
        ("headline_max_chars", 5),
        ("headline_max_chars", 70.5),
    ],
)
def test_bad_values_name_their_rule(key, value):
    assert list(errors_of({key: value})) == [key]


def test_every_error_is_reported_at_once():
    errors = errors_of({"spelling": "en", "numerals": 9, "banned": [{"phrase": ""}], "x": 1})
    assert set(errors) == {"spelling", "numerals", "banned.0.phrase", "x"}


# --- prompt lines --------------------------------------------------------------------------------------------------


def test_prompt_lines_state_every_rule():
    assert prompt_lines(parse(FULL)) == [
        'Do not use the word "slams"; write "criticises".',
        'Do not use the word "shocking".',
        "Use British spelling.",
        "Write headlines in sentence case.",
        "Keep headlines to 70 characters or fewer.",
        "Spell out numbers from one to nine; use digits from 10.",
        "In Chinese text, use full-width punctuation (，。：；？！（）).",
    ]


def test_prompt_lines_for_the_other_choices():
    style = rules(
        banned=[{"phrase": "in order to", "replacement": "to"}], spelling="us", headline_case="title", numerals="digits"
    )
    assert prompt_lines(style) == [
        'Do not use the phrase "in order to"; write "to".',
        "Use American spelling.",
        "Write headlines in title case.",
        "Use digits for numbers.",
    ]
    assert prompt_lines(StyleRules()) == []


# --- lint: banned ----------------------------------------------------------------------------------------------------

BANS = rules(banned=[{"phrase": "slams", "replacement": "criticises"}, {"phrase": "shocking"}])


def test_banned_phrases_are_found_with_exact_spans():
    text = "The minister slams the plan. Slams it twice. A shocking day."
    found = lint(BANS, text, headline=False)
    assert spans(found) == [
        ("banned", 13, 18, "slams", "criticises"),
        ("banned", 29, 34, "Slams", "Criticises"),
        ("banned", 47, 55, "shocking", None),
    ]
    assert found[0].reason == 'House style: write "criticises", not "slams".'
    assert found[2].reason == 'House style: do not use "shocking".'
    assert all(text[f.start : f.end] == f.text and f.check == "style" and not f.fixed for f in found)


def test_banned_phrases_match_whole_words_only():
    text = "Unslammed, slamsville and slammed: none is the word; slams-and-spins is."
    assert spans(lint(BANS, text, headline=False)) == [("banned", 53, 58, "slams", "criticises")]


def test_a_banned_phrase_of_several_words_matches_across_spaces_and_case():
    style = rules(banned=[{"phrase": "in order to", "replacement": "to"}])
    text = "We met In  order\nto talk."
    assert spans(lint(style, text, headline=False)) == [("banned", 7, 19, "In  order\nto", "To")]


def test_a_banned_phrase_in_a_quotation_or_url_is_reported_or_skipped():
    text = 'He said "the mayor slams us" at https://x.com/mayor-slams-plan today.'
    found = lint(BANS, text, headline=False)
    assert spans(found) == [("banned", 19, 24, "slams", "criticises")]
    assert "inside a quotation" in found[0].reason


# --- lint: spelling ----------------------------------------------------------------------------------------------------


def test_uk_spelling_flags_american_forms_with_their_inflections():
    text = "Color me organized: we traveled to three centers. Colors!"
    found = lint(rules(spelling="uk"), text, headline=False)
    assert spans(found) == [
        ("spelling", 0, 5, "Color", "Colour"),
        ("spelling", 9, 18, "organized", "organised"),
        ("spelling", 23, 31, "traveled", "travelled"),
        ("spelling", 41, 48, "centers", "centres"),
        ("spelling", 50, 56, "Colors", "Colours"),
    ]
    assert found[1].reason == 'House style is British spelling: "organised", not "organized".'


def test_us_spelling_flags_british_forms():
    text = "A colourful programme on defence, organising the licence."
    assert spans(lint(rules(spelling="us"), text, headline=False)) == [
        ("spelling", 2, 11, "colourful", "colorful"),
        ("spelling", 12, 21, "programme", "program"),
        ("spelling", 25, 32, "defence", "defense"),
        ("spelling", 34, 44, "organising", "organizing"),
        ("spelling", 49, 56, "licence", "license"),
    ]


def test_pairs_right_in_both_varieties_are_checked_one_way():
    text = "They license the computer program and practice daily; the analyses differ."
    assert lint(rules(spelling="uk"), text, headline=False) == []
    assert lint(rules(spelling="us"), text, headline=False) == []


def test_names_are_not_respelled():
    text = "The Labor Party met at Lincoln Center about labor."
    style = rules(spelling="uk")
    assert [f.text for f in lint(style, text, headline=False)] == ["Labor", "Center", "labor"]
    assert [f.text for f in lint(style, text, headline=False, names={"Labor Party", "Lincoln Center"})] == ["labor"]


# --- lint: headlines ---------------------------------------------------------------------------------------------------


def test_sentence_case_flags_title_case_words_but_not_acronyms_or_mixed_case():
    text = "Apple Unveils iPhone At NASA Event In UK"
    found = lint(rules(headline_case="sentence"), text, headline=True, names={"Apple"})
    assert spans(found) == [
        ("headline_case", 6, 13, "Unveils", "unveils"),
        ("headline_case", 21, 23, "At", "at"),
        ("headline_case", 29, 34, "Event", "event"),
        ("headline_case", 35, 37, "In", "in"),
    ]
    assert found[0].reason == 'Headlines are in sentence case: "unveils", not "Unveils".'


def test_headline_rules_only_apply_to_headlines():
    style = rules(headline_case="sentence", headline_max_chars=10)
    text = "Apple Unveils A Much Longer Headline Than Allowed"
    assert lint(style, text, headline=False) == []
    assert {f.rule for f in lint(style, text, headline=True)} == {"headline_case", "headline_max_chars"}


def test_title_case_capitalises_principal_words_and_keeps_small_ones_low():
    text = "the plan Of the year: a vote for change to come in"
    found = lint(rules(headline_case="title"), text, headline=True)
    assert spans(found) == [
        ("headline_case", 0, 3, "the", "The"),
        ("headline_case", 4, 8, "plan", "Plan"),
        ("headline_case", 9, 11, "Of", "of"),
        ("headline_case", 16, 20, "year", "Year"),
        ("headline_case", 22, 23, "a", "A"),
        ("headline_case", 24, 28, "vote", "Vote"),
        ("headline_case", 33, 39, "change", "Change"),
        ("headline_case", 43, 47, "come", "Come"),
        ("headline_case", 48, 50, "in", "In"),
    ]


def test_an_overlong_headline_is_reported_from_the_limit_on():
    text = "A" * 75
    found = lint(rules(headline_max_chars=70), text, headline=True)
    assert spans(found) == [("headline_max_chars", 70, 75, "AAAAA", None)]
    assert found[0].reason == "The headline is 75 characters; house style allows 70."
    assert lint(rules(headline_max_chars=70), "A" * 70, headline=True) == []


# --- lint: numerals ----------------------------------------------------------------------------------------------------


def test_one_to_nine_are_spelled_out_and_ten_up_are_digits():
    text = "We saw 3 cats, twelve dogs and 14 birds. 4 left. Twelve stayed."
    found = lint(rules(numerals="spell_one_to_nine"), text, headline=False)
    assert spans(found) == [
        ("numerals", 7, 8, "3", "three"),
        ("numerals", 15, 21, "twelve", "12"),
        ("numerals", 41, 42, "4", "Four"),
    ]
    assert found[0].reason == 'House style spells out one to nine: "three", not "3".'


@pytest.mark.parametrize(
    "text",
    [
        "It grew 3.5 per cent.",
        "They won 3-1.",
        "It costs £3.",
        "Up 5% today.",
        "A 5 km run.",
        "It raised 2 million.",
        "See page 3 now.",
        "Running Windows 7 still.",
        "Meet at 3pm.",
        "1. First item",
        "It was the 3rd time.",
        "增长3个百分点。",
        "Read https://a.b/c/3 now.",
    ],
)
def test_digits_that_keep_their_figure(text):
    assert lint(rules(numerals="spell_one_to_nine"), text, headline=False) == []


def test_digits_rule_flags_spelled_numbers_but_not_one():
    text = "No one saw five cars, twenty-one vans or two-thirds of it."
    assert spans(lint(rules(numerals="digits"), text, headline=False)) == [
        ("numerals", 11, 15, "five", "5"),
        ("numerals", 22, 32, "twenty-one", "21"),
    ]


# --- lint: Chinese punctuation --------------------------------------------------------------------------------------------


def test_ascii_punctuation_next_to_chinese_is_flagged_with_spaces_it_takes():
    text = "你好, 世界!他说:好(是的)."
    found = lint(rules(chinese_punctuation="full_width"), text, headline=False)
    assert spans(found) == [
        ("chinese_punctuation", 2, 4, ", ", "，"),
        ("chinese_punctuation", 6, 7, "!", "！"),
        ("chinese_punctuation", 9, 10, ":", "："),
        ("chinese_punctuation", 11, 12, "(", "（"),
        ("chinese_punctuation", 14, 15, ")", "）"),
        ("chinese_punctuation", 15, 16, ".", "。"),
    ]
    assert found[0].reason == 'In Chinese text, use the full-width "，", not ",".'


def test_a_mark_next_to_a_converted_mark_is_converted_in_the_same_pass():
    found = lint(rules(chinese_punctuation="full_width"), "真的?!好 ?:;)", headline=False)
    assert [f.replacement for f in found] == ["？", "！", "？", "：", "；"]


@pytest.mark.parametrize(
    "text",
    [
        "增长3.5%，同比上升。",
        "访问https://a.b/c查看。",
        "价格为1,000元，时间10:30。",
        "美国U.S.总统",
        "他说...",
        "Hello, world (again).",
    ],
)
def test_numbers_urls_and_latin_text_keep_their_punctuation(text):
    assert lint(rules(chinese_punctuation="full_width"), text, headline=False) == []


# --- apply -----------------------------------------------------------------------------------------------------------------


def test_apply_replaces_banned_phrases_keeping_their_capitalisation():
    text, found = apply(BANS, "Slams. He slams. SLAMS! A shocking day.", headline=False)
    assert text == "Criticises. He criticises. CRITICISES! A shocking day."
    assert [(f.rule, f.start, f.end, f.text, f.fixed) for f in found] == [
        ("banned", 0, 10, "Criticises", True),
        ("banned", 15, 25, "criticises", True),
        ("banned", 27, 37, "CRITICISES", True),
        ("banned", 41, 49, "shocking", False),
    ]
    assert found[0].reason == 'House style: wrote "Criticises" for "Slams".'


def test_apply_leaves_quotations_as_said():
    original = 'The mayor slams it. “Nobody slams us,” she said; "he slams".'
    text, found = apply(BANS, original, headline=False)
    assert text == 'The mayor criticises it. “Nobody slams us,” she said; "he slams".'
    assert [(f.text, f.fixed) for f in found] == [("criticises", True), ("slams", False), ("slams", False)]


def test_apply_puts_a_headline_in_sentence_case_keeping_acronyms_and_names():
    style = rules(headline_case="sentence")
    text, found = apply(
        style, "Tim Cook Says Apple Will Open Stores In The UK And At NASA", headline=True, names={"Tim Cook", "Apple"}
    )
    assert text == "Tim Cook says Apple will open stores in the UK and at NASA"
    assert all(f.fixed and f.rule == "headline_case" for f in found)
    assert [f.text for f in found] == ["says", "will", "open", "stores", "in", "the", "and", "at"]


def test_names_from_a_source_keep_them_in_sentence_case():
    source = "The chief executive, Tim Cook, told reporters in Cupertino that Apple would grow."
    assert {"Tim", "Cook", "Cupertino", "Apple"} <= names_from(source)
    assert "The" not in names_from(source)
    text, _ = apply(
        rules(headline_case="sentence"), "Apple Boss Tim Cook Visits Cupertino", headline=True, names=names_from(source)
    )
    assert text == "Apple boss Tim Cook visits Cupertino"


def test_sentence_case_keeps_quoted_titles_and_the_word_after_a_colon():
    text, _ = apply(rules(headline_case="sentence"), 'Review: "The Lord Of The Rings" Returns On Monday', headline=True)
    assert text == 'Review: "The Lord Of The Rings" returns on Monday'
    text, _ = apply(rules(headline_case="sentence"), "climate: The Year Ahead", headline=True)
    assert text == "Climate: The year ahead"


def test_sentence_case_lowers_the_article_a_but_not_plan_a():
    text, _ = apply(rules(headline_case="sentence"), "A Plan For A Better World Or Plan A", headline=True)
    assert text == "A plan for a better world or plan A"


def test_apply_puts_a_headline_in_title_case():
    text, _ = apply(rules(headline_case="title"), "apple unveils a plan for the future of work", headline=True)
    assert text == "Apple Unveils a Plan for the Future of Work"
    text, _ = apply(rules(headline_case="title"), "long-term plans for eBay and NASA", headline=True)
    assert text == "Long-Term Plans for eBay and NASA"


def test_headline_case_is_not_applied_to_body_text():
    original = "Apple Unveils New Phone"
    assert apply(rules(headline_case="sentence"), original, headline=False) == (original, [])


def test_a_replacement_is_put_in_headline_case():
    style = rules(banned=[{"phrase": "slams", "replacement": "criticises"}], headline_case="sentence")
    text, found = apply(style, "Minister Slams Plan", headline=True)
    assert text == "Minister criticises plan"
    assert all(text[f.start : f.end] == f.text for f in found)
    assert [(f.rule, f.start, f.end) for f in found] == [
        ("banned", 9, 19),
        ("headline_case", 9, 19),
        ("headline_case", 20, 24),
    ]


def test_apply_puts_full_width_punctuation_in_chinese_text():
    style = rules(chinese_punctuation="full_width")
    text, found = apply(style, "你好, 世界!增长(3%). 见https://a.b/c,谢谢", headline=False)
    assert text == "你好，世界！增长（3%）。见https://a.b/c，谢谢"
    assert all(f.fixed and text[f.start : f.end] == f.text for f in found)
    assert [f.text for f in found] == ["，", "！", "（", "）", "。", "，"]


def test_chinese_numbers_and_urls_are_untouched_by_apply():
    original = "增长3.5%，详见https://a.b/c"
    assert apply(rules(chinese_punctuation="full_width"), original, headline=False) == (original, [])


def test_spelling_numerals_and_length_are_reported_not_applied():
    style = rules(spelling="uk", numerals="spell_one_to_nine", headline_max_chars=10)
    original = "The color of 3 cars, said twelve drivers"
    text, found = apply(style, original, headline=True)
    assert text == original
    assert spans(found) == [
        ("spelling", 4, 9, "color", "colour"),
        ("headline_max_chars", 10, 40, original[10:], None),
        ("numerals", 13, 14, "3", "three"),
        ("numerals", 26, 32, "twelve", "12"),
    ]
    assert not any(f.fixed for f in found)


IDEMPOTENT_CASES = [
    ("Minister Slams Shocking Plan: The Colour Of 3 Years", True),
    ('He said "it slams" and she slams it; 3 colors.', False),
    ("你好, 世界!增长(3%). 见https://a.b/c,谢谢... (好)", False),
    ("apple unveils a plan for the future of work", True),
    ("Tim Cook Says The UK Slams Plan A", True),
]


@pytest.mark.parametrize("text, headline", IDEMPOTENT_CASES)
@pytest.mark.parametrize("case", ["sentence", "title"])
def test_apply_is_idempotent(text, headline, case):
    style = parse({**FULL, "headline_case": case})
    once, found = apply(style, text, headline=headline)
    twice, again = apply(style, once, headline=headline)
    assert twice == once
    assert not any(f.fixed for f in again)
    assert again == [f for f in found if not f.fixed]
    assert all(once[f.start : f.end] == f.text for f in found)
