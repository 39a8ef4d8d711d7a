"""A version's checks: what they accept, which text is the source, and the verdict on one candidate."""

import pytest

from generation.content import checks, formats
from generation.content.prompts import InvalidInput

STORY = (
    "The city council agreed on Tuesday to build a new bridge over the Elm River. Construction starts in spring "
    "and should finish in 2028, the mayor said. It will cost $40 million."
)
HEADLINE, TEXT = formats.spec("headline"), formats.spec("text")
VARIABLES = [{"name": "text", "type": "text"}, {"name": "words", "type": "number"}]


@pytest.mark.parametrize(
    "data, field",
    [
        ({"colour": "red"}, "checks.colour"),
        ({"source": "words"}, "checks.source"),  # a number input is no source
        ({"source": "story"}, "checks.source"),
        ({"grounding": "yes"}, "checks.grounding"),
        ({"language": "fr"}, "checks.language"),
        ({"style": {"spelling": "martian"}}, "checks.style.spelling"),
    ],
)
def test_bad_checks_name_the_field(data, field):
    with pytest.raises(InvalidInput) as exc:
        checks.parse(data, variables=VARIABLES)
    assert field in exc.value.errors, exc.value.errors


def test_checks_round_trip_and_default_to_grounded():
    assert checks.parse(None) == checks.parse({}) and checks.parse({}).grounding
    data = {"source": "text", "grounding": False, "language": "en", "style": {"headline_case": "sentence"}}
    assert checks.parse(checks.parse(data, variables=VARIABLES).as_json()).as_json() == data


def test_the_source_is_the_declared_input_or_the_text_of_kinds_that_condense_one():
    inputs = {"text": STORY, "notes": "Bridge notes"}
    assert checks.source_of(checks.parse({}), "headline", inputs) == STORY
    assert checks.source_of(checks.parse({}), "summary", inputs) == STORY
    assert checks.source_of(checks.parse({}), "writing", inputs) is None
    assert checks.source_of(checks.parse({"source": "notes"}), "writing", inputs) == "Bridge notes"


def test_a_headline_with_a_figure_the_story_never_gives_is_refused_with_the_span():
    text = "Council agrees to build Elm River bridge by 2030"
    verdict = checks.review(checks.parse({}), HEADLINE, "headline", text, {"text": STORY})
    assert verdict.rejected == "grounding"
    [finding] = verdict.unsupported
    assert text[finding.start : finding.end] == "2030" and "2030" in finding.reason


def test_a_grounded_headline_passes():
    verdict = checks.review(checks.parse({}), HEADLINE, "headline", "Council backs $40 million bridge", {"text": STORY})
    assert verdict.rejected is None and verdict.unsupported == []


def test_with_grounding_off_findings_are_reported_but_nothing_is_refused():
    off = checks.parse({"grounding": False})
    verdict = checks.review(off, HEADLINE, "headline", "Bridge to open in 2030", {"text": STORY})
    assert verdict.rejected is None and [f.text for f in verdict.unsupported] == ["2030"]


def test_a_summary_drops_its_unsupported_sentence_and_keeps_the_rest():
    text = "The council agreed to build a bridge. It will open in 2031. It costs $40 million."
    verdict = checks.review(checks.parse({}), TEXT, "summary", text, {"text": STORY})
    assert verdict.rejected is None and verdict.unsupported == []
    assert verdict.text == "The council agreed to build a bridge. It costs $40 million."


def test_a_summary_with_nothing_supported_left_is_refused():
    verdict = checks.review(checks.parse({}), TEXT, "summary", "It opens in 2031.", {"text": STORY})
    assert verdict.rejected == "grounding" and verdict.text == "It opens in 2031."


def test_another_language_than_the_source_is_refused():
    source = "市议会周二同意在榆树河上修建一座新桥，工程将于明年春季开工，预计2028年完工。"
    verdict = checks.review(
        checks.parse({}), HEADLINE, "headline", "City Council Approves New Bridge", {"text": source}
    )
    assert verdict.rejected == "language"
    assert any(f.check == "language" and "Chinese" in f.reason for f in verdict.findings)


def test_code_and_empty_outputs_are_not_checked():
    code = formats.spec("code")
    assert checks.review(checks.parse({}), code, "code", "x = 2030", {"text": STORY}).findings == []
    assert checks.review(checks.parse({}), HEADLINE, "headline", "", {"text": STORY}).rejected is None


def test_instructions_join_the_system_message_and_are_never_read_as_placeholders():
    rules = checks.parse({"language": "en", "style": {"banned": [{"phrase": "{text}", "replacement": "story"}]}})
    messages = checks.with_instructions(
        [{"role": "system", "content": "You edit."}, {"role": "user", "content": "Hi"}], rules
    )
    assert messages[0]["content"].startswith("You edit.\n\n") and "{text}" in messages[0]["content"]
    assert "English" in messages[0]["content"] and messages[1] == {"role": "user", "content": "Hi"}
    bare = checks.with_instructions([{"role": "user", "content": "Hi"}], rules)
    assert bare[0]["role"] == "system" and len(bare) == 2
    assert checks.with_instructions([{"role": "user", "content": "Hi"}], checks.parse({})) == [
        {"role": "user", "content": "Hi"}
    ]


def test_grounded_distinct_headlines_near_the_ideal_length_rank_first_and_the_score_is_stable():
    rules = checks.parse({})
    texts = [
        "Bridge will open in 2030 says mayor",  # a year the story never gives
        "Council agrees to build new bridge over Elm River",
        "Council agrees to build a new bridge over the Elm River",  # nearly the one above
        "Elm River to get $40 million bridge by 2028",
    ]
    verdicts = [checks.review(rules, HEADLINE, "headline", t, {"text": STORY}) for t in texts]
    scores = [checks.score(HEADLINE, v, texts) for v in verdicts]
    assert scores == [checks.score(HEADLINE, v, texts) for v in verdicts]
    assert scores[0] == min(scores) and scores[3] == max(scores)
    alone = checks.score(HEADLINE, verdicts[1], [texts[1]])
    assert scores[1] < alone  # a near-repeat of a sibling ranks lower than it would alone


@pytest.mark.parametrize(
    "text",
    [
        "Here's a rewritten headline for the story:",
        "Here is a headline for the council's bridge",
        "This headline is accurate and catchy. But the bridge costs $40 million",
        "Sure! Council backs $40 million bridge",
        "Council backs the Elm River bridge:",
    ],
)
def test_chatter_is_no_headline_and_is_refused(text):
    verdict = checks.review(checks.parse({}), HEADLINE, "headline", text, {"text": STORY})
    assert verdict.rejected == "chatter"
    assert [(f.check, f.start, f.end) for f in verdict.findings if f.check == "chatter"] == [("chatter", 0, len(text))]


def test_chatter_ranks_below_every_real_headline():
    rules = checks.parse({})
    texts = [
        "Here's a rewritten headline for the story:",
        "This headline is accurate and catchy. But the bridge costs $40 million",
        "Bridge will open in 2030 and cost 50 million euros says mayor",  # two claims the story never gives
        "Council agrees to build new bridge over Elm River",
    ]
    verdicts = [checks.review(rules, HEADLINE, "headline", t, {"text": STORY}) for t in texts]
    scores = [checks.score(HEADLINE, v, texts) for v in verdicts]
    assert max(scores[:2]) < min(scores[2:]), scores


def test_headlines_that_only_mention_here_or_a_colon_inside_are_not_chatter():
    for text in (
        "Elm River bridge: council backs $40 million plan",
        "Bridge here by 2028, council says",
        "Here's why the Elm River bridge matters",
        "The title of the bridge fight goes to the council",
    ):
        verdict = checks.review(checks.parse({}), HEADLINE, "headline", text, {"text": STORY})
        assert verdict.rejected is None and not any(f.check == "chatter" for f in verdict.findings), text


def test_summaries_are_not_read_as_headline_chatter():
    text = "Here is the plan: the council agreed to build a bridge."
    assert checks.review(checks.parse({}), TEXT, "summary", text, {"text": STORY}).rejected is None


def test_what_the_checks_cannot_judge_is_named():
    rules = checks.parse({})
    assert checks.unjudged(rules, HEADLINE, "headline", {"text": STORY}) == {}
    assert checks.unjudged(rules, HEADLINE, "headline", {"text": "市议会周二同意修建新桥。"}) == {}
    assert checks.unjudged(rules, TEXT, "writing", {"topic": "bridges"}) == {"grounding": "no_source"}
    assert checks.unjudged(rules, HEADLINE, "headline", {"text": "  "}) == {"grounding": "no_source"}
    assert checks.unjudged(rules, HEADLINE, "headline", {"text": "東京で新しい橋が開通した。"}) == {
        "grounding": "source_language"
    }
    assert checks.unjudged(rules, formats.spec("code"), "code", {"text": STORY}) == {
        "grounding": "code",
        "language": "code",
        "style": "code",
    }
