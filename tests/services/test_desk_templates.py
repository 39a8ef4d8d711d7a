"""A desk's own templates (its members only) and its house style (under every template's own rules): in the
prompt, on the job, and applied to what the bundled model writes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from generation import selectors, services
from generation.content import checks, style
from generation.models import Desk, JobStatus, PromptTemplate
from tests.support.desks import STORY, desk, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def sport_template(user, other_user):
    """`user` on sport, `other_user` on politics; sport has its own copy of the headline template."""
    sport, politics = desk("sport"), desk("politics")
    join(user, sport)
    join(other_user, politics)
    base = PromptTemplate.objects.get(slug="headline")
    own = services.template_create(
        user=user,
        slug="sport-headline",
        kind="headline",
        name="Sport headline",
        **services.resolve_version(base).content(),
    )
    PromptTemplate.objects.filter(pk=own.pk).update(desk=sport)
    return PromptTemplate.objects.get(pk=own.pk)


def test_a_desk_s_own_template_is_its_members_only(user, other_user, sport_template, api, client):
    assert sport_template in selectors.templates_for_kind("headline", user)
    assert sport_template not in selectors.templates_for_kind("headline", other_user)
    assert selectors.template_by_slug("sport-headline", user=other_user) is None
    with pytest.raises(ValidationError) as info:
        services.job_create(user=other_user, template="sport-headline", inputs={"text": STORY})
    assert "Unknown template" in info.value.message_dict["template"][0]
    job = services.job_create(user=user, template="sport-headline", inputs={"text": STORY})
    assert job.template == sport_template
    assert api.get("/api/v1/templates/sport-headline/").status_code == 200  # `api` is `user`'s key
    client.force_login(other_user)
    assert "sport-headline" not in client.get("/jobs/new/headline/").content.decode()


def test_the_house_style_goes_under_the_template_s_own_rules():
    house = {
        "headline_case": "sentence",
        "numerals": "spell_one_to_nine",
        "banned": [{"phrase": "Utilise", "replacement": "use"}],
    }
    own = {"headline_case": "title", "banned": [{"phrase": "utilise", "replacement": "employ"}, {"phrase": "slam"}]}
    merged = style.layered(house, own)
    assert merged["headline_case"] == "title" and merged["numerals"] == "spell_one_to_nine"
    assert [b["phrase"] for b in merged["banned"]] == ["utilise", "slam"]  # the template's own wins, once
    assert style.layered(None, own) == own and checks.with_house_style({"source": "text"}, None) == {"source": "text"}


def test_a_desk_s_style_is_checked_stated_and_applied(user, gguf_engine, django_capture_on_commit_callbacks):
    sport = desk("sport", style={"banned": [{"phrase": "bridge", "replacement": "span"}]})
    join(user, sport)
    bad = Desk(organisation=sport.organisation, name="Bad", slug="bad", style={"banned": [{"replacement": "x"}]})
    with pytest.raises(ValidationError) as info:
        bad.full_clean()
    assert "banned.0.phrase" in " ".join(info.value.message_dict["style"])

    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(user=user, kind="headline", inputs={"text": STORY}, params={"seed": 3, "n": 3})
    assert job.house_style == sport.style
    assert 'Do not use the word "bridge"; write "span".' in job.messages[0]["content"]
    sport.style = {}
    sport.save()  # the job keeps the rules it was created with
    services.job_run(job.pk, engine=gguf_engine)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    texts = [o.text for o in job.outputs.all()]
    assert not any("bridge" in t.lower() for t in texts), texts
    fixed = [f for o in job.outputs.all() for f in o.checks if f["rule"] == "banned"]
    assert all(f["fixed"] for f in fixed)
