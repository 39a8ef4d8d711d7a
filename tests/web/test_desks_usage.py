"""An editor sees their own usage (today's and this month's tokens against each budget that holds them) on the
API keys page; and the studio says when the small bundled demo model is serving."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string
from django.utils import translation

from generation import selectors, services
from generation.models import Desk, Job, JobStatus
from tests.support.desks import STORY, desk, join

pytestmark = pytest.mark.django_db


def test_an_editor_sees_their_usage_against_their_limits(client, user):
    sport = desk("sport", tokens_per_month=90_000)
    join(user, sport, tokens_per_day=5_000)
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, prompt_tokens=300, completion_tokens=20)
    client.force_login(user)
    page = client.get("/keys/").content.decode()
    assert page.count("Editorial tools send a key") == 1
    assert '<meter min="0" max="5000" value="320"' in page and "320 of 5000" in page  # the member's day
    assert '<meter min="0" max="90000" value="320"' in page and "320 of 90000" in page  # the desk's month
    assert "member:editor@sport daily" in page and "desk:sport monthly" in page
    chinese = client.get("/keys/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
    assert chinese.count("编辑工具以") == 1 and "320 / 5000" in chinese  # the paragraph once, in Chinese too


def test_without_a_budget_the_usage_block_says_so(client, user):
    Desk.objects.update(tokens_per_day=None, tokens_per_month=None)
    Desk.objects.get(is_default=True).organisation.__class__.objects.update(tokens_per_day=None, tokens_per_month=None)
    client.force_login(user)
    page = client.get("/keys/").content.decode()
    assert "No token budget limits your jobs." in page and "<meter" not in page


def test_the_demo_note_shows_while_the_bundled_model_serves(settings):
    settings.AIGC = {**settings.AIGC, "MODELS": {"default": {"threads": 2}}}
    assert selectors.demo_model_serving()
    note = render_to_string("generation/_demo_note.html", {"demo_model": selectors.demo_model_serving()})
    assert "A small demo model is serving: expect short, rough drafts" in note
    with translation.override("zh-hans"):
        assert "demo model" not in render_to_string("generation/_demo_note.html", {"demo_model": True})
    settings.AIGC = {**settings.AIGC, "MODELS": {"default": {"path": "/models/llama-8b.gguf"}}}
    assert not selectors.demo_model_serving()
    assert render_to_string("generation/_demo_note.html", {"demo_model": False}).strip() == ""
