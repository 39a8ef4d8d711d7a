import pytest

from generation.content.findings import Finding
from generation.content.grounding import Claim, check, claims

BRIDGE = (
    "The city council agreed on Tuesday to build a new bridge over the Elm River. Construction starts in spring "
    "and should finish in 2028, the mayor said. It will cost $40 million."
)
LYON = "Lyon opened its new tram line on Monday. Mayor Grégory Doucet said 5,000 people rode it on the first day."
CN_BRIDGE = "市议会周二同意在榆树河上修建一座新桥。工程将于春季开工，预计2028年完工，耗资4000万美元。"

CASES = [
    # the real example: the model stretched 2028 into a range
    (BRIDGE, "The city council agreed to build a new bridge ... which will take 2028-2030", [("year", "2030")]),
    (BRIDGE, "City council approves $40 million bridge over the Elm River, to finish in 2028.", []),
    (BRIDGE, "Council Approves New Bridge Over Elm River", []),
    (BRIDGE, "COUNCIL APPROVES NEW BRIDGE OVER ELM RIVER", []),
    (BRIDGE, "Council Approves New Bridge Over Seine River", [("name", "Seine")]),
    # Title Case: ordinary words the source does not use are not names; rare ones are
    (BRIDGE, "City Council Approves Bridge Completion Date", []),
    (BRIDGE, "Elm River Bridge Construction Gets Green Light", []),
    (
        CN_BRIDGE,
        "Shouji Yasui, News Hero, Dismantles Old Market",
        [("name", "Shouji Yasui"), ("name", "Dismantles")],
    ),
    (BRIDGE, "New bridge over the Elm River will cost $40m", []),
    (BRIDGE, "The council backs a bridge costing US$40 million.", []),
    (BRIDGE, "The bridge will cost 40 million dollars.", []),
    (BRIDGE, "The bridge will cost 40,000,000 dollars.", []),
    (BRIDGE, "The bridge will cost 40 million.", []),
    (BRIDGE, "The bridge will cost 40 million euros.", [("money", "40 million euros")]),
    (BRIDGE, "The bridge will cost $45 million.", [("money", "$45 million")]),
    (BRIDGE, "Work on the bridge should be done by 2030.", [("year", "2030")]),
    (BRIDGE, "Work on the Elm-River bridge ends in 2028.", []),
    (BRIDGE, "The mayor of Paris said the bridge will open in 2028.", [("name", "Paris")]),
    (BRIDGE, "Tuesday's vote on the Elm River bridge.", []),
    (BRIDGE, 'The mayor called it "a bridge for everyone".', [("quote", '"a bridge for everyone"')]),
    (BRIDGE, "The bridge should finish in 2028, the mayor said in March.", [("date", "March")]),
    # numbers in digits, in words, grouped or not
    ("About 5,000 people attended.", "Some 5000 people attended", []),
    ("About 5 000 people attended.", "Some 5,000 people attended", []),
    ("About five thousand people attended.", "5,000 people attended", []),
    ("Three people were hurt.", "3 people were hurt", []),
    ("3 people were hurt.", "Three people were hurt", []),
    ("Three people were hurt.", "Four people were hurt", [("number", "Four people")]),
    ("About 5,000 people attended.", "About 6,000 people attended", [("number", "6,000 people")]),
    ("About 5,000 people attended.", "5,000 homes were sold", [("number", "5,000 homes")]),
    ("About 5,000 people attended.", "5,000 attended", []),
    ("5,000 people came.", "5,000 cars came", [("number", "5,000 cars")]),
    ("The firm sold 5,000 new homes.", "5,000 homes were sold", []),
    ("The firm sold one home and 12 flats.", "The firm sold 12 flat", []),
    ("Two million people voted.", "2 million people voted", []),
    ("2m people voted.", "Two million people voted", []),
    ("The deal is worth 1.5 billion dollars.", "A deal worth $1,500 million", []),
    ("The team finished third.", "The team finished 3rd.", []),
    ("The team finished 3rd.", "The team finished third.", []),
    ("Sales rose 12 percent.", "Sales rose 12%", []),
    ("Sales rose 12%.", "Sales rose 12 per cent", []),
    ("Sales rose 12 pct.", "Sales rose 12 percent.", []),
    ("Sales rose 12%.", "Sales rose 15%", [("percent", "15%")]),
    # dates and years
    ("The vote is on March 3.", "The vote is on 3 March", []),
    ("The vote is on March 3.", "The vote is on Mar. 3.", []),
    ("The vote is on March 3.", "The vote is on March 4.", [("date", "March 4")]),
    ("The vote was held on 3 March 2025.", "The 2025-03-03 vote", []),
    ("The vote was held on 3 March 2025.", "The vote was held in 2025", []),
    ("The plant opened in 2028 after delays.", "Opened: 2028", []),
    ("The vote is on Tuesday.", "Vote set for Wednesday", []),
    # names: case, possessives, hyphens, sentence starts
    ("Officials in PARIS said the line opens soon.", "Paris line opens soon, officials say", []),
    ("the paris line opens soon.", "Line opens soon in Paris", []),
    ("Anne Smith leads the project.", "The project is Smith's idea", []),
    ("Anne Smith leads the project.", "The project is led by John Smith", [("name", "John")]),
    ("Jean-Paul Martin is the new coach.", "The coach, Jean-Paul, starts today", []),
    ("It is a well-known problem.", "A well-known problem returns", []),
    (LYON, "Paris opened a new tram line on Monday.", []),  # a lone first word is not a name by itself
    (LYON, "A new tram line opened in Paris on Monday.", [("name", "Paris")]),
    (LYON, "Lyon's new tram line carried 5,000 people on day one, Mayor Gregory Doucet said.", []),
    (
        LYON,
        "Lyon Mayor Grégory Doucet said 5,000 people rode the line, said Minister Clément Beaune.",
        [("name", "Clément Beaune")],
    ),
    (LYON, 'Doucet called the line "a great success".', [("quote", '"a great success"')]),
    ('The mayor said: "We will build it quickly." Work starts soon.', "The mayor: “We will BUILD it  quickly”", []),
    # Chinese
    (CN_BRIDGE, "市议会批准修建耗资4000万美元的新桥，预计2028年完工", []),
    (CN_BRIDGE, "市议会批准修建新桥，预计2030年完工", [("year", "2030年")]),
    (CN_BRIDGE, "新桥耗资四千万美元", []),
    (CN_BRIDGE, "新桥耗资4000万欧元", [("money", "4000万欧元")]),
    (CN_BRIDGE, "新桥耗资5000万美元", [("money", "5000万美元")]),
    (BRIDGE, "新桥耗资四千万美元，将于2028年完工", []),
    ("该项目预算为五千万元。", "预算为5000万元", []),
    ("The budget is 50,000,000 yuan.", "预算为五千万元", []),
    ("失业率为百分之十二。", "失业率为12%", []),
    ("失业率为12%。", "失业率为百分之十五", [("percent", "百分之十五")]),
    ("公司有两百名员工。", "公司有200名员工", []),
    ("公司有三家工厂。", "公司有3家工厂，员工两百人", [("number", "两百人")]),
    ("该市人口3.5亿。", "人口三点五亿", []),
    ("该市人口350,000,000。", "人口3.5亿", []),
    ("市长说：“这座桥属于每个人。”", "市长称「这座桥属于每个人」", []),
    ("市长说：“这座桥属于每个人。”", "市长称“这座桥将改变城市”", [("quote", "“这座桥将改变城市”")]),
    ("会议于星期三举行，大家一起讨论了一些问题。", "会议在周三举行，十分重要", []),
    ("会议于2025年3月3日举行。", "会议于3月3日举行", []),
]


@pytest.mark.parametrize("source, output, expected", CASES)
def test_check_reports_what_the_source_does_not_support(source, output, expected):
    findings = check(source, output)
    assert [(f.rule, f.text) for f in findings] == expected
    for f in findings:
        assert f.check == "grounding"
        assert f.text == output[f.start : f.end]


def test_there_are_enough_cases_in_both_languages():
    chinese = [case for case in CASES if any("\u4e00" <= ch <= "\u9fff" for ch in case[1])]
    assert len(CASES) >= 45 and len(chinese) >= 10


@pytest.mark.parametrize(
    "text, expected",
    [
        ("It will cost $40 million.", [("money", "$40 million", "40000000 USD")]),
        ("5,000 people came", [("number", "5,000 people", "5000 people")]),
        ("Sales rose 12 per cent in 2024", [("percent", "12 per cent", "12%"), ("year", "2024", "2024")]),
        ("On Mar. 3, 2025 it rained", [("date", "Mar. 3, 2025", "2025-03-03")]),
        ("on 3 March", [("date", "3 March", "????-03-03")]),
        ("by 2028-2030", [("year", "2028", "2028"), ("year", "2030", "2030")]),
        ("one of the two", [("number", "two", "2")]),
        ("covid-19 and g7 talks in 3D or in the 1990s", []),
        ("耗资3.5亿元", [("money", "3.5亿元", "350000000 CNY")]),
        ("百分之十二", [("percent", "百分之十二", "12%")]),
        ("2025年3月3日", [("date", "2025年3月3日", "2025-03-03")]),
        ("一些人十分高兴", []),
    ],
)
def test_claims_and_their_normal_form(text, expected):
    found = claims(text)
    assert [(c.rule, c.text, c.value) for c in found] == expected


def test_number_words_with_a_and_dozen():
    values = [c.value for c in claims("a dozen eggs and a million fans")]
    assert values == ["12 eggs", "1000000 fans"]


def test_claim_spans_are_slices_of_the_text():
    text = (
        "On March 3, Mayor Anne O'Brien's team said \"we are ready\": 5,000 people, 12% more, $40m, two million "
        "riders, 2030. 会议于2025年3月3日举行，耗资五千万美元，增长百分之十二，「很好」。"
    )
    found = claims(text)
    assert {c.rule for c in found} == {"date", "name", "quote", "number", "percent", "money", "year"}
    for claim in found:
        assert isinstance(claim, Claim)
        assert claim.text == text[claim.start : claim.end]
    assert [c.start for c in found] == sorted(c.start for c in found)


def test_names_skip_possessives_and_sentence_starts():
    found = [(c.rule, c.text) for c in claims("Construction starts soon. The plan is Smith's, said Anne Smith.")]
    assert found == [("name", "Smith"), ("name", "Anne Smith")]


def test_a_percent_is_not_also_a_bare_number():
    findings = check("Sales rose 12%.", "Sales rose 15% to 3,000 units")
    assert [(f.rule, f.text) for f in findings] == [("percent", "15%"), ("number", "3,000 units")]


def test_a_made_up_quote_hides_the_names_inside_it():
    findings = check(BRIDGE, 'The mayor said "Paris has nothing like it".')
    assert [(f.rule, f.text) for f in findings] == [("quote", '"Paris has nothing like it"')]


def test_reasons_are_for_people():
    by_text = {f.text: f.reason for f in check(BRIDGE, "The Paris bridge costs 40 million euros and opens in 2030.")}
    assert by_text == {
        "Paris": '"Paris" is not named in the source.',
        "40 million euros": 'The source gives "$40 million", not euros.',
        "2030": 'The source gives no "2030".',
    }
    assert check("5,000 people came.", "5,000 cars came")[0].reason == 'The source gives "5,000 people", not cars.'
    assert check("It rained.", 'He said "no"')[0].reason == 'The source does not say "no".'


def test_findings_round_trip_as_json():
    finding = check(BRIDGE, "It will be done in 2030.")[0]
    assert Finding.from_json(finding.as_json()) == finding
    assert finding == Finding("grounding", "year", 19, 23, "2030", 'The source gives no "2030".')


def test_nothing_to_check():
    assert check("", "") == []
    assert check(BRIDGE, "") == []
    assert claims("the bridge is nice") == []


# Title Case headlines capitalise every word: the names in them are the capitalised runs the source lacks, several
# words long as often as not ("Amber Ruiz", "Ports Authority of Sydney"); one word alone is a name when it is rare.
HARBOUR = (
    "The harbour board approved its new budget on Tuesday. Spending on dredging and on the ferry terminal will "
    "rise by 12%, the board's chair said, and the fish market will stay open."
)
NAMED = (
    "amber ruiz, the mayor of riverton, opened the golden curry restaurant on Tuesday. the ports authority of "
    "sydney said the harbour will stay open."
)
TITLE_CASE = [
    (HARBOUR, "Amber Ruiz, Mayor of Riverton, Backs Harbour Budget", [("name", "Amber Ruiz"), ("name", "Riverton")]),
    (
        HARBOUR,
        "The Golden Curry Scandal: The Ports Authority of Sydney Faces Questions",
        [("name", "Golden Curry"), ("name", "Ports Authority of Sydney")],
    ),
    (HARBOUR, "Mayor Ruiz Backs Harbour Budget", [("name", "Ruiz")]),
    # the names are in the source, in another case: nothing to report
    (NAMED, "Amber Ruiz, Mayor of Riverton, Opens Golden Curry Restaurant", []),
    (NAMED, "The Golden Curry Scandal: The Ports Authority of Sydney Faces Questions", []),
    (NAMED, "AMBER RUIZ OPENS GOLDEN CURRY", []),
    # ordinary words the source does not use are not names
    (HARBOUR, "Harbour Board Unveils Bold Budget for Ferry Terminal", []),
    (HARBOUR, "Fish Market Stays Open as Harbour Spending Rises", []),
    (HARBOUR, "Harbour Dredging Spending Set for Sweeping Increase", []),
]


@pytest.mark.parametrize("source, output, expected", TITLE_CASE)
def test_title_case_names_are_checked_as_runs_of_capitalised_words(source, output, expected):
    findings = check(source, output)
    assert [(f.rule, f.text) for f in findings] == expected
    for f in findings:
        assert f.text == output[f.start : f.end] and f.reason == f'"{f.text}" is not named in the source.'


def test_sentence_case_keeps_its_name_check():
    assert check(HARBOUR, "Harbour budget backed as Lorient waits") == [
        Finding("grounding", "name", 25, 32, "Lorient", '"Lorient" is not named in the source.')
    ]
    assert check(HARBOUR + " Ferries to lorient will run daily.", "Harbour budget backed as Lorient waits") == []
