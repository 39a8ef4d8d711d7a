"""The desk's change form in the admin: the house style in the same structured editor as the desk's own page,
saving the same JSON; a bad value is an error naming its input."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import Desk

pytestmark = pytest.mark.django_db


def _change_data(desk: Desk, **style) -> dict:
    """The change form as the admin posts it: the desk's fields, no members added, and the style's inputs."""
    return {
        "organisation": desk.organisation_id,
        "name": desk.name,
        "slug": desk.slug,
        "is_default": "on" if desk.is_default else "",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        **{f"style_{k}": v for k, v in style.items()},
    }


def test_the_admin_saves_the_house_style_from_its_structured_editor(staff):
    desk = Desk.objects.get(is_default=True)
    url = reverse("admin:generation_desk_change", args=[desk.pk])
    page = staff.get(url).content.decode()
    assert 'name="style_headline_case"' in page and 'name="style_banned_0_phrase"' in page
    saved = staff.post(
        url,
        _change_data(
            desk,
            spelling="us",
            headline_max_chars="80",
            banned_0_phrase="slams",
            banned_0_replacement="criticises",
            banned_1_phrase="",
        ),
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    desk.refresh_from_db()
    assert desk.style == {
        "banned": [{"phrase": "slams", "replacement": "criticises"}],
        "spelling": "us",
        "headline_max_chars": 80,
    }
    page = staff.get(url).content.decode()
    assert 'value="criticises"' in page and '<option value="us" selected>' in page

    cleared = staff.post(url, _change_data(desk, banned_0_phrase=""))
    assert cleared.status_code == 302
    desk.refresh_from_db()
    assert desk.style == {}


def test_a_bad_style_in_the_admin_is_an_error_naming_its_input(staff):
    desk = Desk.objects.get(is_default=True)
    url = reverse("admin:generation_desk_change", args=[desk.pk])
    refused = staff.post(url, _change_data(desk, numerals="roman", headline_max_chars="9"))
    text = refused.content.decode()
    assert refused.status_code == 200
    assert "Numerals: One of: spell_one_to_nine, digits." in text
    assert "Maximum headline length: A whole number of characters from 10 to 300." in text
    desk.refresh_from_db()
    assert desk.style == {}
