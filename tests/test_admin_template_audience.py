"""The template's change form: who sees it in the studio (audience, also a list filter) and its name and
description in Chinese, kept in its translations; set on a new template too."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import Audience, PromptTemplate
from tests.test_admin import form_data

pytestmark = pytest.mark.django_db


def test_staff_set_a_template_s_audience_and_chinese_words(staff):
    made = staff.post(
        reverse("admin:generation_prompttemplate_add"),
        form_data(audience="staff", name_zh="标语", description_zh="产品标语。"),
    )
    assert made.status_code == 302, made.content.decode()[:2000]
    tagline = PromptTemplate.objects.get(slug="tagline")
    assert tagline.audience == Audience.STAFF
    assert tagline.translations == {"zh-hans": {"name": "标语", "description": "产品标语。"}}

    change = reverse("admin:generation_prompttemplate_change", args=[tagline.pk])
    page = staff.get(change).content.decode()
    assert 'value="标语"' in page and '<option value="staff" selected>' in page
    staff.post(change, form_data(audience="everyone", name_zh="", description_zh=""))
    tagline.refresh_from_db()
    assert tagline.audience == Audience.EVERYONE and tagline.translations == {}
    staff.post(change, form_data())  # a post without the audience keeps it
    tagline.refresh_from_db()
    assert tagline.audience == Audience.EVERYONE

    listed = staff.get(reverse("admin:generation_prompttemplate_changelist"), {"audience__exact": "api"})
    text = listed.content.decode()
    assert '?_changelist_filters=audience__exact%3Dapi">chat<' in text and '">tagline</a></th>' not in text
