"""The desk admin's page, without being staff: members added, re-roled and removed, budgets set, usage by day,
member and template with a chart; another desk (or a plain member) gets a 404. The usage API and gauges."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from generation import services
from generation.models import Desk, DeskLabel, DeskRole, Job, JobStatus, Membership, PromptTemplate
from tests.support.desks import STORY, desk, join

pytestmark = pytest.mark.django_db


@pytest.fixture
def sport(user, django_user_model):
    """The sport desk, with `user` as an editor and `boss` (not staff) as its desk admin."""
    sport = desk("sport")
    join(user, sport)
    boss = django_user_model.objects.create_user(username="boss", password="pw-boss-12345")
    join(boss, sport, DeskRole.ADMIN)
    return sport, boss


def test_a_desk_admin_manages_members_and_budgets_without_being_staff(client, sport, django_user_model):
    desk_, boss = sport
    newcomer = django_user_model.objects.create_user(username="newcomer", password="pw-new-12345")
    client.force_login(boss)
    assert not boss.is_staff
    page = client.get("/jobs/").content.decode()
    assert 'href="/desks/"' in page
    client.post("/desks/sport/members/", {"username": "newcomer", "role": "reviewer"})
    assert Membership.objects.get(desk=desk_, user=newcomer).role == DeskRole.REVIEWER
    again = client.post("/desks/sport/members/", {"username": "newcomer", "role": "editor"}, follow=True)
    assert "already a member" in again.content.decode()
    unknown = client.post("/desks/sport/members/", {"username": "nobody", "role": "editor"}, follow=True)
    assert "Nobody can be added to Sport as &#x27;nobody&#x27;" in unknown.content.decode()

    member = Membership.objects.get(desk=desk_, user=newcomer)
    client.post(
        f"/desks/sport/members/{member.pk}/",
        {f"m{member.pk}-role": "editor", f"m{member.pk}-tokens_per_day": "5000", f"m{member.pk}-tokens_per_month": ""},
    )
    member.refresh_from_db()
    assert (member.role, member.tokens_per_day, member.tokens_per_month) == (DeskRole.EDITOR, 5000, None)
    bad = client.post("/desks/sport/budgets/", {"tokens_per_day": "-5"}, follow=True)
    assert "tokens_per_day" in bad.content.decode()
    client.post("/desks/sport/budgets/", {"tokens_per_day": "20000", "member_tokens_per_month": "90000"})
    desk_.refresh_from_db()
    assert (desk_.tokens_per_day, desk_.tokens_per_month, desk_.member_tokens_per_month) == (20000, None, 90000)
    client.post(f"/desks/sport/members/{member.pk}/remove/")
    assert not Membership.objects.filter(pk=member.pk).exists()


def test_the_last_desk_admin_cannot_step_down_or_leave(client, sport):
    desk_, boss = sport
    mine = Membership.objects.get(desk=desk_, user=boss)
    client.force_login(boss)
    refused = client.post(f"/desks/sport/members/{mine.pk}/remove/", follow=True)
    assert "needs a desk admin" in refused.content.decode() and Membership.objects.filter(pk=mine.pk).exists()
    client.post(f"/desks/sport/members/{mine.pk}/", {f"m{mine.pk}-role": "editor"})
    assert Membership.objects.get(pk=mine.pk).role == DeskRole.ADMIN


def test_another_desk_or_a_plain_member_gets_a_404(client, sport, user, django_user_model):
    desk_, _ = sport
    rival = django_user_model.objects.create_user(username="rival", password="pw-rival-12345")
    join(rival, desk("politics"), DeskRole.ADMIN)
    for who in (rival, user):
        client.force_login(who)
        assert client.get("/desks/sport/").status_code == 404
        assert client.post("/desks/sport/budgets/", {"tokens_per_day": "1"}).status_code == 404
        assert client.post("/desks/sport/members/", {"username": who.username, "role": "admin"}).status_code == 404
        assert client.get("/desks/sport/templates/").status_code == 404
        assert client.post("/desks/sport/style/", {"style_spelling": "us"}).status_code == 404
        assert client.post("/desks/sport/templates/headline/label/", {"l1-version": "1"}).status_code == 404
    desk_.refresh_from_db()
    assert desk_.tokens_per_day is None
    assert not Membership.objects.filter(desk=desk_, role=DeskRole.ADMIN).exclude(user__username="boss").exists()
    with pytest.raises(PermissionDenied):
        services.desk_budgets_set(desk_, actor=rival, tokens_per_day=1)


def test_usage_by_day_member_and_template_with_its_chart(client, sport, user):
    desk_, boss = sport
    desk_.tokens_per_day = 10_000
    desk_.save()
    for who, used in ((user, 300), (user, 200), (boss, 50)):
        job = services.job_create(user=who, kind="headline", inputs={"text": STORY})
        Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, prompt_tokens=used, completion_tokens=0)
    client.force_login(boss)
    page = client.get("/desks/sport/").content.decode()
    assert '<svg id="usage-chart"' in page and "550 tokens over the last 14 days" in page
    assert "desk:sport daily" in page
    report = client.get("/api/v1/desks/sport/usage/").json()
    assert {(r["member"], r["template"], r["jobs"], r["tokens"]) for r in report["days"]} == {
        ("editor", "headline", 2, 500),
        ("boss", "headline", 1, 50),
    }
    assert report["budgets"][0]["name"] == "desk:sport daily" and report["budgets"][0]["used"] == 550
    client.force_login(user)
    assert client.get("/api/v1/desks/sport/usage/").status_code == 404


def test_budgets_and_member_usage_are_prometheus_gauges(client, sport, user, settings):
    from generation.selectors import usage_gauges

    desk_, _ = sport
    desk_.tokens_per_day = 10_000
    desk_.save()
    job = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED, prompt_tokens=70, completion_tokens=5)
    from generation.infra import metrics

    text = metrics.render(lambda: {}, None, usage_gauges).decode()
    assert 'aigc_budget_used_tokens{budget="desk:sport daily"} 75.0' in text
    assert 'aigc_budget_limit_tokens{budget="desk:sport daily"} 10000.0' in text
    assert 'aigc_desk_member_tokens_today{desk="sport",member="editor"} 75.0' in text


def test_a_desk_admin_runs_the_desk_s_templates_and_style_from_its_page(client, sport, user):
    desk_, boss = sport
    client.force_login(boss)
    page = client.get("/desks/sport/templates/").content.decode()
    assert 'id="template-headline"' in page and "Follow the shared label (v1)" in page

    made = client.post("/desks/sport/templates/", {"source": "summary", "slug": "sport-summary", "name": "Sport"})
    own = PromptTemplate.objects.get(desk=desk_, name="Sport")
    assert made.status_code == 302 and own.slug == "sport--sport-summary"
    prompt = "Sum up {story} in a sport voice."
    refused = client.post(f"/desks/sport/templates/{own.slug}/", {f"e{own.pk}-user_template": prompt})
    text = refused.content.decode()
    assert refused.status_code == 400 and "story" in text and "in a sport voice." in text  # kept as typed
    assert own.versions.count() == 1
    client.post(
        f"/desks/sport/templates/{own.slug}/",
        {f"e{own.pk}-user_template": "Sum up for sport fans:\n\n{text}", f"e{own.pk}-note": "Fans"},
    )
    assert own.versions.count() == 2
    client.post(f"/desks/sport/templates/{own.slug}/label/", {f"l{own.pk}-version": "2"}, follow=True)
    assert services.resolve_version(own).number == 2

    shared = PromptTemplate.objects.get(slug="headline")
    said = client.post("/desks/sport/templates/headline/label/", {f"l{shared.pk}-version": "1"}, follow=True)
    assert "Sport runs News headlines at v1." in said.content.decode()
    assert DeskLabel.objects.get(desk=desk_, template=shared).version.number == 1

    bad_style = {"style_banned_0_phrase": "", "style_banned_0_replacement": "criticises"}
    kept = client.post("/desks/sport/style/", bad_style)
    text = kept.content.decode()
    assert kept.status_code == 400 and "Banned words, row 1, word: Must be non-empty text." in text
    assert 'value="criticises"' in text  # kept as typed
    client.post("/desks/sport/style/", {"style_spelling": "uk"})
    desk_.refresh_from_db()
    assert desk_.style == {"spelling": "uk"}
    client.force_login(user)  # an editor of the desk sees its own template in the studio
    assert "sport-summary" in client.get("/jobs/new/summary/").content.decode()


def test_a_prompt_over_its_cap_is_a_form_error_on_its_field(client, sport, settings):
    desk_, boss = sport
    settings.AIGC = {**settings.AIGC, "MAX_PROMPT_CHARS": 200}
    own = services.desk_template_create(
        desk_, actor=boss, source=PromptTemplate.objects.get(slug="summary"), slug="digest", name="Digest"
    )
    client.force_login(boss)
    long = "Sum up {text} " + "at length " * 30
    refused = client.post(f"/desks/sport/templates/{own.slug}/", {f"e{own.pk}-user_template": long})
    assert refused.status_code == 400
    form = next(row["edit_form"] for row in refused.context["rows"] if row["template"] == own)
    assert list(form.errors) == ["user_template"] and "200 characters" in form.errors["user_template"][0]
    assert own.versions.count() == 1


def test_desk_pages_count_against_the_user_s_requests_a_minute(client, sport, settings, fresh_minute):
    _, boss = sport
    settings.AIGC = {**settings.AIGC, "USER_REQUESTS_PER_MINUTE": 3}
    client.force_login(boss)
    codes = [client.get("/desks/sport/templates/").status_code for _ in range(3)]
    refused = client.post("/desks/sport/style/", {"style_spelling": "uk"})
    assert codes == [200, 200, 200] and refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert "3 requests a minute" in refused.content.decode()
    assert Desk.objects.get(slug="sport").style == {}


def test_a_budget_past_a_database_integer_is_a_form_error_not_a_500(client, sport):
    desk_, boss = sport
    member = Membership.objects.get(desk=desk_, user__username="editor")
    client.force_login(boss)
    huge = str(2**31)
    bad = client.post("/desks/sport/budgets/", {"tokens_per_day": "100", "member_tokens_per_month": huge}, follow=True)
    assert bad.status_code == 200 and "member_tokens_per_month" in bad.content.decode()
    bad = client.post(
        f"/desks/sport/members/{member.pk}/",
        {f"m{member.pk}-role": "editor", f"m{member.pk}-tokens_per_day": huge},
        follow=True,
    )
    assert bad.status_code == 200 and "tokens_per_day" in bad.content.decode()
    desk_.refresh_from_db()
    member.refresh_from_db()
    assert (desk_.tokens_per_day, desk_.member_tokens_per_month, member.tokens_per_day) == (None, None, None)
    with pytest.raises(ValidationError) as info:  # the service holds the same bound, whoever calls it
        services.desk_budgets_set(desk_, actor=boss, tokens_per_month=2**31)
    assert list(info.value.message_dict) == ["tokens_per_month"]


def test_staff_s_cap_is_shown_to_the_desk_admin_who_cannot_lift_it(client, sport):
    desk_, boss = sport
    Desk.objects.filter(pk=desk_.pk).update(cap_tokens_per_day=10_000)
    client.force_login(boss)
    page = client.get("/desks/sport/").content.decode()
    assert "10000 tokens a day" in page and 'name="cap_tokens_per_day"' not in page
    refused = client.post("/desks/sport/budgets/", {"tokens_per_day": "50000", "cap_tokens_per_day": ""}, follow=True)
    assert "tokens_per_day: At most 10000" in refused.content.decode()
    desk_.refresh_from_db()
    assert (desk_.tokens_per_day, desk_.cap_tokens_per_day) == (None, 10_000)
