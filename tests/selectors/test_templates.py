"""Lists of templates (the history's filter, the API's template list) read no version's prompts: a desk's
template may hold many versions, each with long prompts, and these pages are read on every visit."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from generation import services
from generation.models import DeskRole, PromptTemplate
from tests.support.desks import desk, join

pytestmark = pytest.mark.django_db


def test_template_lists_read_no_version_text(user, api, client, django_user_model):
    sport = desk("sport")
    join(user, sport)
    boss = django_user_model.objects.create_user(username="boss", password="pw-boss-12345")
    join(boss, sport, DeskRole.ADMIN)
    own = services.desk_template_create(
        sport, actor=boss, source=PromptTemplate.objects.get(slug="headline"), slug="wordy", name="Wordy"
    )
    for n in range(3):
        services.desk_template_edit(sport, own, actor=boss, system_prompt=f"Draft {n}. " + "Be vivid. " * 500)
    client.force_login(user)
    for get in (lambda: api.get("/api/v1/templates/"), lambda: client.get("/jobs/")):
        with CaptureQueriesContext(connection) as queries:
            response = get()
        assert response.status_code == 200
        read = " ".join(q["sql"] for q in queries.captured_queries)
        assert '"generation_templateversion"."system_prompt"' not in read
        assert '"generation_templateversion"."user_template"' not in read
    listed = next(t for t in api.get("/api/v1/templates/").json() if t["slug"] == own.slug)
    assert listed["production_version"] == 1 and listed["variables"][0]["name"] == "text"
