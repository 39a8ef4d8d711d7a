"""A desk's own templates (its members only) and its house style (under every template's own rules): in the
prompt, on the job, and applied to what the bundled model writes."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from generation import selectors, services
from generation.content import checks, style
from generation.models import Desk, DeskLabel, DeskRole, Job, JobStatus, Membership, PromptTemplate
from tests.support.desks import STORY, desk, join
from tests.support.evaluation import equal_version, run_here, small_dataset, worse_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def sport_template(user, other_user):
    """`user` on sport, `other_user` on politics; sport has its own copy of the headline template."""
    sport, politics = desk("sport"), desk("politics")
    join(user, sport)
    join(other_user, politics)
    base = PromptTemplate.objects.get(slug="headline")
    return services.template_create(
        user=user,
        slug="sport-headline",
        kind="headline",
        name="Sport headline",
        desk=sport,
        **services.resolve_version(base).content(),
    )


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


@pytest.fixture
def sport_admin(user, other_user, django_user_model):
    """`user` edits on sport, `boss` (not staff) is its desk admin, `other_user` is on politics."""
    sport, politics = desk("sport"), desk("politics")
    join(user, sport)
    join(other_user, politics)
    boss = django_user_model.objects.create_user(username="boss", password="pw-boss-12345")
    join(boss, sport, DeskRole.ADMIN)
    return sport, boss


def test_a_desk_s_label_on_a_shared_template_runs_its_jobs_and_nobody_else_s(user, other_user, sport_admin):
    sport, boss = sport_admin
    template = PromptTemplate.objects.get(slug="headline")
    v1 = services.resolve_version(template)
    content = {**v1.content(), "system_prompt": v1.system_prompt + " Keep it short."}
    v2, _ = services.template_version_create(template=template, note="shorter", **content)
    services.desk_label_set(sport, template, actor=boss, version=v1.number)  # sport stays where it was
    services.template_label_move(template=template, label="production", version=v2)  # everyone else moves on

    mine = services.job_create(user=user, kind="headline", inputs={"text": STORY})
    theirs = services.job_create(user=other_user, kind="headline", inputs={"text": STORY})
    assert (mine.template_version, theirs.template_version) == (v1, v2)
    assert services.resolve_version(template, desk=sport) == v1 and services.resolve_version(template) == v2
    pinned = DeskLabel.objects.get(desk=sport, template=template, name="production")
    move = pinned.moves.get()
    assert (move.label, move.from_version, move.to_version, move.moved_by) == (None, None, v1, boss)

    services.desk_label_set(sport, template, actor=boss, version=None)  # back to the shared label
    assert services.job_create(user=user, kind="headline", inputs={"text": STORY}).template_version == v2
    assert [(m.from_version, m.to_version) for m in pinned.moves.order_by("moved_at", "pk")] == [(None, v1), (v1, None)]


def test_only_the_desk_s_admin_moves_its_labels_and_only_on_its_templates(user, other_user, sport_admin):
    sport, boss = sport_admin
    template = PromptTemplate.objects.get(slug="headline")
    with pytest.raises(PermissionDenied):
        services.desk_label_set(sport, template, actor=user, version=1)  # an editor of the desk
    politics_own = services.template_create(
        slug="politics-headline",
        kind="headline",
        name="Politics headline",
        desk=Desk.objects.get(slug="politics"),
        **services.resolve_version(template).content(),
    )
    with pytest.raises(ValidationError) as info:
        services.desk_label_set(sport, politics_own, actor=boss, version=1)
    assert "has no template 'politics-headline'" in info.value.message_dict["template"][0]
    with pytest.raises(ValidationError) as info:
        services.desk_label_set(sport, template, actor=boss, version=99)
    assert "has no version 99" in info.value.message_dict["version"][0]
    assert not DeskLabel.objects.exists()


def test_a_desk_admin_starts_edits_and_publishes_the_desk_s_own_template(user, other_user, sport_admin):
    sport, boss = sport_admin
    shared = PromptTemplate.objects.get(slug="summary")
    own = services.desk_template_create(sport, actor=boss, source=shared, slug="sport-summary", name="Sport summary")
    assert own.desk == sport and own.kind == "summary"
    first = services.resolve_version(own)
    assert first.content() == services.resolve_version(shared, desk=sport).content()
    assert own in selectors.templates_for_kind("summary", user)
    assert own not in selectors.templates_for_kind("summary", other_user)

    with pytest.raises(ValidationError) as info:  # a placeholder no input fills: refused, nothing written
        services.desk_template_edit(sport, own, actor=boss, user_template="Sum up {story}.")
    assert "story" in services.error_line(info.value)
    assert own.versions.count() == 1
    edited, created = services.desk_template_edit(
        sport, own, actor=boss, system_prompt="You write sport summaries.", note="Sport voice"
    )
    assert created and edited.number == 2 and edited.user_template == first.user_template
    assert services.resolve_version(own) == first  # saved, not yet published
    services.desk_label_set(sport, own, actor=boss, version=2)
    job = services.job_create(user=user, template=own.slug, inputs={"text": STORY})
    assert job.template_version == edited and job.messages[0]["content"].startswith("You write sport summaries.")
    with pytest.raises(ValidationError):
        services.desk_template_edit(sport, shared, actor=boss, system_prompt="Mine now")  # shared: not the desk's
    with pytest.raises(ValidationError) as info:
        services.desk_label_set(sport, own, actor=boss, version=None)
    assert "version" in info.value.message_dict


def test_a_desk_s_house_style_is_set_by_its_admin_and_checked(sport_admin, user):
    sport, boss = sport_admin
    with pytest.raises(ValidationError) as info:
        services.desk_style_set(sport, actor=boss, style={"headline_case": "shouting"})
    assert "headline_case" in " ".join(info.value.message_dict["style"])
    with pytest.raises(PermissionDenied):
        services.desk_style_set(sport, actor=user, style={"headline_case": "sentence"})
    services.desk_style_set(sport, actor=boss, style={"headline_case": "sentence"})
    sport.refresh_from_db()
    assert sport.style == {"headline_case": "sentence"}
    assert services.job_create(user=user, kind="headline", inputs={"text": STORY}).house_style == sport.style


def test_a_desk_s_label_moves_through_the_gate_judged_against_what_the_desk_runs(
    sport_admin, curator, fast_headline, gguf_engine
):
    sport, boss = sport_admin
    PromptTemplate.objects.filter(pk=fast_headline.pk).update(gate_dataset="gate")
    fast_headline.refresh_from_db()
    small_dataset(fast_headline, curator)
    worse = worse_version(fast_headline, curator)
    with pytest.raises(services.GateRefused) as refused:
        services.desk_label_set(sport, fast_headline, actor=boss, version=worse.number)
    assert f"No finished experiment of v{worse.number}" in refused.value.failures[0]
    with pytest.raises(ValidationError) as info:  # a desk admin is not staff: no override
        services.desk_label_move(
            desk=sport, template=fast_headline, label="production", version=worse, user=boss, override=True, reason="x"
        )
    assert "override" in info.value.message_dict
    services.desk_label_set(sport, fast_headline, actor=boss, version=worse.number, label="staging")  # not gated

    equal = equal_version(fast_headline, curator)
    passed = run_here(
        services.experiment_start(template=fast_headline, user=curator, version=equal.number), gguf_engine
    )
    assert passed.gate["passed"], passed.gate
    services.desk_label_set(sport, fast_headline, actor=boss, version=equal.number)
    move = DeskLabel.objects.get(desk=sport, name="production").moves.get()
    assert (move.to_version, move.experiment) == (equal, passed)
    assert services.resolve_version(fast_headline) != equal  # the shared label did not move


def test_a_desk_admin_cannot_pile_up_prompts_versions_or_templates(sport_admin, settings):
    """Every version is kept and read back: a desk admin's prompts, versions and templates are bounded (settings),
    each refusal naming what is at fault, nothing written."""
    sport, boss = sport_admin
    settings.AIGC = {**settings.AIGC, "MAX_PROMPT_CHARS": 200, "MAX_VERSIONS_PER_TEMPLATE": 3}
    settings.AIGC["MAX_TEMPLATES_PER_DESK"] = 2
    shared = PromptTemplate.objects.get(slug="summary")
    own = services.desk_template_create(sport, actor=boss, source=shared, slug="digest", name="Digest")
    with pytest.raises(ValidationError) as info:
        services.desk_template_edit(sport, own, actor=boss, system_prompt="x" * 201)
    assert "At most 200 characters" in info.value.message_dict["system_prompt"][0]
    with pytest.raises(ValidationError) as info:
        services.desk_template_edit(sport, own, actor=boss, user_template="Sum up: {text} " + "y" * 200)
    assert list(info.value.message_dict) == ["user_template"]
    assert own.versions.count() == 1
    for n in (2, 3):
        assert services.desk_template_edit(sport, own, actor=boss, system_prompt=f"Voice {n}.")[0].number == n
    with pytest.raises(ValidationError) as info:
        services.desk_template_edit(sport, own, actor=boss, system_prompt="Voice 4.")
    assert "3 versions" in info.value.message_dict["template"][0] and own.versions.count() == 3
    services.desk_template_create(sport, actor=boss, source=shared, slug="brief", name="Brief")
    with pytest.raises(ValidationError) as info:
        services.desk_template_create(sport, actor=boss, source=shared, slug="third", name="Third")
    assert "2 templates of its own" in info.value.message_dict["desk"][0]
    assert sport.templates.count() == 2


@pytest.fixture
def clashing(sport_admin):
    """A shared template whose own rules ban "slams", and a house style valid alone that writes "slams"."""
    base = services.resolve_version(PromptTemplate.objects.get(slug="headline"))
    template = services.template_create(
        slug="clash-headline",
        kind="headline",
        name="Clash headline",
        **{**base.content(), "checks": {**base.checks, "style": {"banned": [{"phrase": "slams"}]}}},
    )
    house = {"banned": [{"phrase": "attacks", "replacement": "slams"}]}
    style.parse(house)  # valid alone
    return template, house


def test_a_house_style_that_clashes_with_a_template_is_refused_naming_it(sport_admin, clashing):
    sport, boss = sport_admin
    _, house = clashing
    with pytest.raises(ValidationError) as info:
        services.desk_style_set(sport, actor=boss, style=house)
    said = " ".join(info.value.message_dict["style"])
    assert "'clash-headline'" in said and "slams" in said and "'headline'" not in said
    sport.refresh_from_db()
    assert sport.style == {}


def test_a_style_that_no_longer_fits_a_template_is_a_400_naming_the_desk(sport_admin, clashing, user, api):
    """A template version made after the style was set: the desk's jobs on it are refused naming `desk` (the
    studio, the API and `/v1` alike), never a 500."""
    sport, _ = sport_admin
    _, house = clashing
    Desk.objects.filter(pk=sport.pk).update(style=house)
    with pytest.raises(ValidationError) as info:
        services.job_create(user=user, template="clash-headline", inputs={"text": STORY})
    assert "'clash-headline'" in info.value.message_dict["desk"][0]
    response = api.post("/api/v1/jobs/", {"template": "clash-headline", "inputs": {"text": STORY}}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "desk"
    assert services.job_create(user=user, template="headline", inputs={"text": STORY}).house_style == house


@pytest.fixture
def two_desks(user, sport_admin, django_user_model):
    """`user` edits on sport and on politics; politics has a template of its own, started by its admin."""
    sport, _ = sport_admin
    politics = Desk.objects.get(slug="politics")
    Membership.objects.create(desk=politics, user=user)
    chief = django_user_model.objects.create_user(username="politics-chief", password="pw-chief-12345")
    join(chief, politics, DeskRole.ADMIN)
    source = PromptTemplate.objects.get(slug="headline")
    own = services.desk_template_create(politics, actor=chief, source=source, slug="briefing", name="Briefing")
    return sport, politics, own


def test_a_desk_s_template_is_never_filed_under_another_desk(user, two_desks, api, client):
    sport, politics, own = two_desks
    with pytest.raises(ValidationError) as info:
        services.job_create(user=user, template=own.slug, inputs={"text": STORY}, desk="sport")
    assert "Unknown template" in info.value.message_dict["template"][0]
    assert services.job_create(user=user, template=own.slug, inputs={"text": STORY}, desk="politics").desk == politics
    body = {"template": own.slug, "inputs": {"text": STORY}, "desk": "sport"}
    assert api.post("/api/v1/jobs/", body, format="json").status_code == 400
    refused = api.post("/api/v1/jobs/batch/", {"jobs": [body]}, format="json")
    assert refused.status_code == 400 and "jobs.0.template" in refused.json()["error"]["fields"]
    client.force_login(user)  # the studio offers a desk's own template on that desk only
    page = client.get(f"/jobs/new/headline/?template={own.slug}")
    assert page.status_code == 200 and 'name="desk"' not in page.content.decode()
    posted = client.post(f"/jobs/new/headline/?template={own.slug}", {"in_text": STORY, "desk": "sport"})
    assert Job.objects.get(pk=posted.url.split("/")[-2]).desk == politics
    assert not Job.objects.filter(template=own, desk=sport).exists()


def test_a_desk_names_its_templates_in_its_own_namespace(user, two_desks, sport_admin, client):
    """Whether a slug is taken never tells one desk's admin about another desk's private templates; nor does the
    public schema."""
    sport, _, own = two_desks
    _, boss = sport_admin
    assert own.slug == "politics--briefing"
    source = PromptTemplate.objects.get(slug="headline")
    mine = services.desk_template_create(sport, actor=boss, source=source, slug="briefing", name="Briefing")
    assert mine.slug == "sport--briefing"
    with pytest.raises(ValidationError) as info:  # taken in the desk's own namespace: the desk's admin sees it
        services.desk_template_create(sport, actor=boss, source=source, slug="sport--briefing", name="Again")
    assert "already exists" in info.value.message_dict["slug"][0]
    with pytest.raises(ValidationError) as info:  # another namespace cannot be typed at all, taken or not
        services.desk_template_create(sport, actor=boss, source=source, slug="politics--briefing", name="Theirs")
    assert "hyphens" in info.value.message_dict["slug"][0]
    schema = client.get("/api/schema/?format=json").content.decode()
    assert "politics--briefing" not in schema and "sport--briefing" not in schema


def test_a_kind_s_default_is_found_among_the_templates_the_desk_may_use(user, two_desks, django_user_model):
    sport, _, own = two_desks
    PromptTemplate.objects.filter(kind="headline").update(is_default=False)
    PromptTemplate.objects.filter(pk=own.pk).update(is_default=True)
    assert services.job_create(user=user, kind="headline", inputs={"text": STORY}, desk="politics").template == own
    with pytest.raises(ValidationError) as info:
        services.job_create(user=user, kind="headline", inputs={"text": STORY}, desk="sport")
    assert "No default template" in info.value.message_dict["kind"][0]
    assert selectors.template_default_for_kind("headline", desk=sport) is None


def test_a_desk_s_copy_of_a_gated_template_keeps_its_gate(sport_admin, curator, fast_headline):
    """The README's promise: a protected label moves for a desk only through the promotion gate, on the desk's
    copy as on the original (the same settings, the same cases)."""
    sport, boss = sport_admin
    PromptTemplate.objects.filter(pk=fast_headline.pk).update(gate_dataset="gate", gate={"protected": ["production"]})
    fast_headline.refresh_from_db()
    cases = small_dataset(fast_headline, curator)
    copy = services.desk_template_create(sport, actor=boss, source=fast_headline, slug="gated", name="Gated")
    assert (copy.gate_dataset, copy.gate) == ("gate", {"protected": ["production"]})
    (copied,) = copy.datasets.all()
    assert [(i.inputs, i.seed) for i in copied.items.all()] == [(i.inputs, i.seed) for i in cases.items.all()]
    edited, _ = services.desk_template_edit(sport, copy, actor=boss, system_prompt="Shorter.")
    with pytest.raises(services.GateRefused) as refused:
        services.desk_label_set(sport, copy, actor=boss, version=edited.number)
    assert "No finished experiment" in refused.value.failures[0]
    assert services.resolve_version(copy).number == 1
    services.desk_label_set(sport, copy, actor=boss, version=edited.number, label="staging")  # not protected
