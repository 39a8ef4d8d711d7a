"""The house style's structured editor on the desk's pages: what is typed becomes exactly the JSON the engine reads
(content/style.py's parser), what is stored comes back as the same form, a bad value is an error naming its
input, and the desk's page says the style in words (never `null`)."""

from __future__ import annotations

import re
from html import unescape

import pytest

from generation import services
from generation.content import style as style_rules
from generation.models import Desk, DeskRole
from generation.web.style_forms import EXTRA_ROWS
from tests.support.desks import desk, join

pytestmark = pytest.mark.django_db

TYPED = {
    "style_headline_case": "sentence",
    "style_spelling": "uk",
    "style_numerals": "spell_one_to_nine",
    "style_chinese_punctuation": "",
    "style_headline_max_chars": "70",
    "style_banned_0_phrase": " slams ",
    "style_banned_0_replacement": "criticises",
    "style_banned_1_phrase": "",  # a blank row between two: skipped
    "style_banned_1_replacement": "",
    "style_banned_2_phrase": "shocking",
    "style_banned_2_replacement": "",
}
STORED = {
    "banned": [{"phrase": "slams", "replacement": "criticises"}, {"phrase": "shocking"}],
    "spelling": "uk",
    "headline_case": "sentence",
    "headline_max_chars": 70,
    "numerals": "spell_one_to_nine",
}


@pytest.fixture
def boss(django_user_model):
    sport = desk("sport")
    boss = django_user_model.objects.create_user(username="boss", password="pw-boss-12345")
    join(boss, sport, DeskRole.ADMIN)
    return boss


def _posted_back(page: str) -> dict:
    """The style form's fields as a browser would send them unchanged: inputs' values and selected options."""
    form = page[page.index('class="style-form"') :]
    form = form[: form.index("</form>")]
    data = {}
    for name, value in re.findall(r'<input type="(?:text|number)" name="(style_[\w]+)"[^>]*?value="([^"]*)"', form):
        data[name] = unescape(value)
    for name, body in re.findall(r'<select name="(style_\w+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        data[name] = chosen.group(1) if chosen else ""
    return data


def test_the_form_saves_the_json_the_engine_reads_and_shows_it_back(client, boss):
    client.force_login(boss)
    saved = client.post("/desks/sport/style/", TYPED)
    assert saved.status_code == 302
    stored = Desk.objects.get(slug="sport").style
    assert stored == STORED and style_rules.parse(stored).as_json() == stored

    page = client.get("/desks/sport/templates/").content.decode()
    back = _posted_back(page)
    assert back["style_headline_case"] == "sentence" and back["style_headline_max_chars"] == "70"
    assert (back["style_banned_0_phrase"], back["style_banned_0_replacement"]) == ("slams", "criticises")
    assert back["style_banned_1_phrase"] == "shocking"
    # Two filled rows and the blank ones to add more without JavaScript.
    assert f"style_banned_{1 + EXTRA_ROWS}_phrase" in back and f"style_banned_{2 + EXTRA_ROWS}_phrase" not in back
    client.post("/desks/sport/style/", back)  # sent back unchanged: the same JSON
    assert Desk.objects.get(slug="sport").style == STORED


def test_a_row_cleared_is_removed_and_an_empty_form_is_no_style(client, boss):
    client.force_login(boss)
    client.post("/desks/sport/style/", TYPED)
    client.post("/desks/sport/style/", {**TYPED, "style_banned_0_phrase": "", "style_banned_0_replacement": ""})
    assert Desk.objects.get(slug="sport").style["banned"] == [{"phrase": "shocking"}]
    client.post("/desks/sport/style/", {"style_banned_0_phrase": ""})
    assert Desk.objects.get(slug="sport").style == {}


@pytest.mark.parametrize(
    "typed, said",
    [
        ({"style_headline_max_chars": "5"}, "Maximum headline length: A whole number of characters from 10 to 300."),
        ({"style_headline_max_chars": "seventy"}, "Maximum headline length: a whole number of characters"),
        ({"style_spelling": "canadian"}, "Spelling: One of: uk, us."),
        ({"style_banned_0_phrase": "", "style_banned_0_replacement": "criticises"}, "Banned words, row 1, word"),
        (
            {"style_banned_0_phrase": "slams", "style_banned_1_phrase": "SLAMS"},
            "Banned words, row 2, word: Already banned",
        ),
        (
            {"style_banned_0_phrase": "slams", "style_banned_0_replacement": "it slams"},
            "Banned words, row 1, replacement: Contains the banned",
        ),
    ],
)
def test_a_bad_value_is_an_error_naming_its_input_and_nothing_is_saved(client, boss, typed, said):
    client.force_login(boss)
    services.desk_style_set(Desk.objects.get(slug="sport"), actor=boss, style={"spelling": "us"})
    refused = client.post("/desks/sport/style/", typed)
    assert refused.status_code == 400 and said in unescape(refused.content.decode())
    assert Desk.objects.get(slug="sport").style == {"spelling": "us"}


def test_the_desk_page_says_the_style_in_words_never_null(client, boss):
    client.force_login(boss)
    for url in ("/desks/sport/", "/desks/sport/templates/"):
        page = client.get(url).content.decode()
        assert "No house style yet." in page and "null" not in page
    client.post("/desks/sport/style/", TYPED)
    page = client.get("/desks/sport/").content.decode()
    assert "No house style yet." not in page
    for words in ("British (-ise, colour)", "Sentence case", "70 characters", "slams → criticises; shocking"):
        assert words in unescape(page)
