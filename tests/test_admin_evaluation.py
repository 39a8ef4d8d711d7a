"""Evaluation in the admin, as a staff user: datasets (upload, frozen cases, copy, from approved jobs), the side by
side of an experiment, the gated label move with staff's override, and the gate's settings. No model runs: runs
and experiments are rows whose summaries and comparison content/evaluation.py computes from hand-made cases."""

import json
import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from generation import services
from generation.content import evaluation, gating
from generation.models import (
    Dataset,
    DatasetOrigin,
    EvaluationItem,
    EvaluationRun,
    Experiment,
    Job,
    JobOutput,
    JobStatus,
    LabelMove,
    PromptTemplate,
    ReviewState,
    RunStatus,
)

pytestmark = pytest.mark.django_db

VARIABLES = [{"name": "text", "type": "text", "required": True, "max_length": 2000}]


@pytest.fixture
def brief(chief):
    """A template with two versions: v1 in production, v2 the candidate."""
    template = services.template_create(
        slug="brief", kind="writing", name="Brief", user=chief, user_template="Write about {text}.", variables=VARIABLES
    )
    services.template_version_create(
        template=template, user=chief, note="shorter", user_template="Write briefly about {text}.", variables=VARIABLES
    )
    return template


def case(text, *, contract=True, chrf=60.0, grounded=True, style=True, missing=()):
    """One case's metrics, shaped as content/evaluation.measure shapes them."""
    return {
        "outputs": [text],
        "error": "",
        "contract": {"ok": contract, "problems": [] if contract else ["3 words for 40 asked (allowed 30-50)"]},
        "grounding": {"applies": True, "ok": grounded, "findings": 0 if grounded else 2},
        "style": {"ok": style, "findings": 0 if style else 1},
        "facts": {"ok": not missing, "missing": list(missing), "forbidden": [], "total": 1},
        "chrf": chrf,
        "tokens": 12,
        "latency_s": 0.8,
    }


def dataset(template, user, name="gate", texts=("A storm hit the coast.", "Rain fell on Monday.")):
    return services.dataset_create(
        template=template, name=name, cases=[{"inputs": {"text": t}, "seed": i} for i, t in enumerate(texts)], user=user
    )


def finished_run(template, version, data, user, metrics, judge=None):
    run = EvaluationRun.objects.create(
        template=template,
        version=version,
        dataset=data,
        model_alias="default",
        judge_version=judge,
        status=RunStatus.FINISHED,
        summary=evaluation.summarise(metrics),
        created_by=user,
        finished_at=timezone.now(),
    )
    for item, m in zip(data.items.order_by("index"), metrics, strict=True):
        EvaluationItem.objects.create(run=run, item=item, metrics=m, measured_at=timezone.now())
    return run


def experiment(template, user, data, baseline_cases, candidate_cases, *, candidate=2, baseline=1):
    """A finished experiment of v`candidate` against v`baseline` (production), judged by the template's gate."""
    base = finished_run(template, template.versions.get(number=baseline), data, user, baseline_cases)
    cand = finished_run(template, template.versions.get(number=candidate), data, user, candidate_cases, base.version)
    items = list(data.items.order_by("index"))
    comparison = evaluation.compare(
        base.summary,
        cand.summary,
        [(i.index, i.inputs, b, c) for i, b, c in zip(items, baseline_cases, candidate_cases, strict=True)],
    )
    gate = gating.parse(template.gate)
    failures = gate.failures(comparison["metrics"])
    return Experiment.objects.create(
        template=template,
        candidate=cand,
        baseline=base,
        baseline_label="production",
        comparison=comparison,
        gate={"passed": not failures, "failures": failures, "thresholds": gate.as_json()},
        created_by=user,
        finished_at=timezone.now(),
    )


def experiment_url(e):
    return reverse("admin:generation_template_experiment", args=[e.template_id, e.pk])


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- datasets --------------------------------------------------------------------------------------------------


def test_an_uploaded_csv_becomes_a_dataset(staff, brief):
    upload = SimpleUploadedFile("cases.csv", b"text,reference,required\nA storm hit.,Storm hits,storm\nRain fell.,,\n")
    response = staff.post(
        reverse("admin:generation_dataset_upload"), {"template": "brief", "name": "uploaded", "file": upload}
    )
    found = Dataset.objects.get(template=brief, name="uploaded")
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:generation_dataset_change", args=[found.pk]
    )
    assert (found.version, found.origin, found.items.count()) == (1, DatasetOrigin.UPLOAD, 2)
    assert found.items.get(index=0).checks == {"required": ["storm"]}
    assert staff.get(reverse("admin:generation_dataset_add"))["Location"] == reverse("admin:generation_dataset_upload")


def test_a_bad_row_names_its_place_and_nothing_is_written(staff, brief):
    upload = SimpleUploadedFile("cases.jsonl", b'{"inputs": {"text": "fine"}}\n{"inputs": {}, "seed": 3}\n')
    response = staff.post(
        reverse("admin:generation_dataset_upload"), {"template": "brief", "name": "bad", "file": upload}
    )
    assert response.status_code == 200
    errors = re.search(r'<div class="errornote" id="upload-errors".*?</div>', response.content.decode(), re.S)[0]
    assert "items.1.inputs.text: This field is required." in errors
    assert not Dataset.objects.filter(name="bad").exists()


def test_cases_are_edited_in_place_until_a_run_freezes_them_then_copied(staff, chief, brief):
    data = dataset(brief, chief, name="edits")
    url = reverse("admin:generation_dataset_change", args=[data.pk])
    html = staff.get(url).content.decode()
    assert 'name="items-0-reference"' in html and "Copy as a new version" not in html

    post = {
        "description": "",
        "items-TOTAL_FORMS": "2",
        "items-INITIAL_FORMS": "2",
        "items-MIN_NUM_FORMS": "0",
        "items-MAX_NUM_FORMS": "1000",
    }
    for i, item in enumerate(data.items.order_by("index")):
        post |= {
            f"items-{i}-id": str(item.pk),
            f"items-{i}-dataset": str(data.pk),
            f"items-{i}-index": str(item.index),
            f"items-{i}-inputs": json.dumps(item.inputs),
            f"items-{i}-reference": "",
            f"items-{i}-checks": "{}",
            f"items-{i}-seed": str(item.seed),
        }
    bad = staff.post(url, {**post, "items-1-inputs": json.dumps({"title": "x"})})
    assert bad.status_code == 200 and "item.inputs.title: Unknown input" in bad.content.decode()
    ok = staff.post(url, {**post, "items-0-reference": "Storm hits coast"})
    assert ok.status_code == 302, ok.content.decode()[:2000]
    assert data.items.get(index=0).reference == "Storm hits coast"

    finished_run(brief, brief.versions.get(number=1), data, chief, [case("a"), case("b")])  # now frozen
    html = staff.get(url).content.decode()
    assert 'name="items-0-reference"' not in html and "Storm hits coast" in html  # shown, read-only
    assert 'id="frozen-note"' in html and "Copy as a new version" in html

    response = staff.post(reverse("admin:generation_dataset_copy", args=[data.pk]))
    copy = Dataset.objects.get(template=brief, name="edits", version=2)
    assert response["Location"] == reverse("admin:generation_dataset_change", args=[copy.pk])
    assert list(copy.items.order_by("index").values_list("reference", flat=True)) == ["Storm hits coast", ""]
    assert 'name="items-0-reference"' in staff.get(response["Location"]).content.decode()  # the copy is editable

    changelist = reverse("admin:generation_dataset_changelist")
    listed = staff.get(changelist).content.decode()
    assert ">edits<" in listed
    staff.post(changelist, {"action": "copy_as_new_version", "_selected_action": [data.pk]})
    assert Dataset.objects.filter(template=brief, name="edits").count() == 3


def test_a_dataset_from_approved_jobs_from_the_template_page(staff, chief, brief, user, django_user_model):
    reviewer = django_user_model.objects.create_user(username="reviewer", password="pw-reviewer-123")
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    reviewer = django_user_model.objects.get(pk=reviewer.pk)
    job = services.job_create(user=user, template="brief", inputs={"text": "A council votes for a bridge."})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.create(job=job, index=0, text="Council backs new bridge")
    services.review_move(Job.objects.get(pk=job.pk), user=user, to_state=ReviewState.IN_REVIEW)
    services.review_move(Job.objects.get(pk=job.pk), user=reviewer, to_state=ReviewState.APPROVED)

    change_url = reverse("admin:generation_prompttemplate_change", args=[brief.pk])
    html = staff.get(change_url).content.decode()
    assert 'id="dataset-from-jobs-form"' in html and 'form="dataset-from-jobs-form"' in html
    assert html.index('id="versions"') < html.index('id="experiments"')  # after the versions

    response = staff.post(
        reverse("admin:generation_template_dataset_from_jobs", args=[brief.pk]),
        {"ds-name": "approved", "ds-limit": "5"},
    )
    assert response.status_code == 302 and response["Location"] == change_url
    built = Dataset.objects.get(template=brief, name="approved")
    item = built.items.get()
    assert (built.origin, item.source_job_id, item.reference) == (
        DatasetOrigin.APPROVED_JOBS,
        job.pk,
        "Council backs new bridge",
    )
    assert "approved v1" in staff.get(change_url).content.decode()

    other = services.template_create(
        slug="empty", kind="writing", name="Empty", user_template="{text}", variables=VARIABLES
    )
    refused = staff.post(
        reverse("admin:generation_template_dataset_from_jobs", args=[other.pk]),
        {"ds-name": "approved", "ds-limit": "5"},
        follow=True,
    )
    assert any("has no approved jobs" in m for m in page_messages(refused))


# --- experiments -----------------------------------------------------------------------------------------------


@pytest.fixture
def refused(chief, brief):
    """An experiment where v2 breaks the contract on case 1 and writes a script tag: the gate refuses it."""
    data = dataset(brief, chief)
    return experiment(
        brief,
        chief,
        data,
        [case("Storm hits the coast", chrf=70.0), case("Rain falls on Monday", chrf=70.0)],
        [case("Storm hits the coast", chrf=70.0), case("<script>alert(1)</script> rain", contract=False, chrf=40.0)],
    )


def test_the_side_by_side_page(staff, refused):
    response = staff.get(experiment_url(refused))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Candidate" in html and "<strong>v2</strong>" in html and "gate v1" in html and "model default" in html

    aggregates = re.search(r'<table id="aggregates".*?</table>', html, re.S)[0]
    rows = re.findall(r"<tr class=\"([^\"]*)\">\s*<th scope=\"row\">([^<]*)</th>", aggregates)
    assert rows[0] == ("ex-regressed", "Contract met")  # the regression first, marked
    assert "100%" in aggregates and "50%" in aggregates and "-50 pts" in aggregates and "▼ worse" in aggregates

    chart = re.search(r"<svg id=\"rates-chart\".*?</svg>", html, re.S)[0]
    assert "<rect" in chart and 'width="150"' in chart and "style=" not in chart  # 50% of the 300-unit bar
    assert 'id="burden"' in html and "Edited before approval" in html

    assert (
        'class="ex-gate ex-refused"' in html
        and "Contract met (contract_rate): 50% against the baseline&#x27;s 100%" in html
    )
    assert html.index('id="case-1"') < html.index('id="case-0"')  # the case that got worse first
    assert "▼ worse: contract, similarity" in html
    assert "<ins>" in html and "<del>" in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "3 words for 40 asked" in html and 'http-equiv="refresh"' not in html  # finished: no refresh

    listed = staff.get(reverse("admin:generation_experiment_changelist")).content.decode()
    assert "production (v1)" in listed and "refused" in listed
    opened = staff.get(reverse("admin:generation_experiment_change", args=[refused.pk]))
    assert opened["Location"] == experiment_url(refused)


def test_a_running_experiment_shows_progress_and_refreshes(staff, chief, brief, refused):
    EvaluationRun.objects.filter(pk=refused.candidate_id).update(status=RunStatus.RUNNING, summary={})
    EvaluationItem.objects.filter(run=refused.candidate_id, item__index=1).update(measured_at=None)
    Experiment.objects.filter(pk=refused.pk).update(finished_at=None, comparison={}, gate={})
    html = staff.get(experiment_url(refused)).content.decode()
    assert "candidate 1/2 cases measured" in html and '<meta http-equiv="refresh" content="5">' in html
    assert "The verdict comes once both runs have finished." in html and 'id="aggregates"' not in html


def test_the_template_page_lists_experiments_and_starts_one(staff, chief, brief, refused):
    change_url = reverse("admin:generation_prompttemplate_change", args=[brief.pk])
    html = staff.get(change_url).content.decode()
    listing = re.search(r'<fieldset class="module aligned" id="experiments">.*?</table>', html, re.S)[0]
    assert experiment_url(refused) in listing and "production (v1)" in listing and "gate v1" in listing
    assert "<strong>refused</strong>" in listing and 'id="experiment-start-form"' in html

    start = reverse("admin:generation_template_experiment_start", args=[brief.pk])
    bad = staff.post(start, {"exp-version": "9", "exp-dataset": "gate", "exp-baseline": "production"}, follow=True)
    assert any("has no version 9" in m for m in page_messages(bad))
    response = staff.post(start, {"exp-version": "2", "exp-dataset": "gate", "exp-baseline": "production"})
    started = Experiment.objects.exclude(pk=refused.pk).get()
    assert response["Location"] == experiment_url(started)
    assert started.candidate.version.number == 2 and started.baseline_id == refused.baseline_id  # baseline reused


# --- the gated label move --------------------------------------------------------------------------------------


def test_the_gate_refuses_with_numbers_then_staff_override_with_a_reason(staff, chief, brief, refused):
    PromptTemplate.objects.filter(pk=brief.pk).update(gate_dataset="gate")
    label_url = reverse("admin:generation_template_label", args=[brief.pk])
    version_page = staff.get(reverse("admin:generation_template_version", args=[brief.pk, 2])).content.decode()
    assert 'name="reason"' in version_page and 'name="override"' in version_page

    response = staff.post(label_url, {"label": "production", "version": "2"}, follow=True)
    shown = page_messages(response)
    assert any(
        "The promotion gate refused moving production to v2." in m and experiment_url(refused) in m for m in shown
    )
    assert (
        "Contract met (contract_rate): 50% against the baseline's 100%, a drop of 50% where at most 0% is allowed"
        in shown
    )
    assert brief.labels.get(name="production").version.number == 1

    no_reason = staff.post(label_url, {"label": "production", "version": "2", "override": "on"}, follow=True)
    assert any("reason: Overriding the gate needs a written reason." in m for m in page_messages(no_reason))
    assert brief.labels.get(name="production").version.number == 1

    staff.post(label_url, {"label": "production", "version": "2", "override": "on", "reason": "Hotfix for a rule"})
    assert brief.labels.get(name="production").version.number == 2
    move = LabelMove.objects.filter(label__name="production").first()
    assert (move.overridden, move.reason, move.experiment, move.moved_by) == (True, "Hotfix for a rule", refused, chief)

    listing = staff.get(reverse("admin:generation_labelmove_changelist")).content.decode()
    assert "Hotfix for a rule" in listing and experiment_url(refused) in listing and "v2 vs v1" in listing


def test_staff_without_the_change_permission_cannot_move_a_label(client, django_user_model, brief, refused):
    PromptTemplate.objects.filter(pk=brief.pk).update(gate_dataset="gate")
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    client.force_login(viewer)
    label_url = reverse("admin:generation_template_label", args=[brief.pk])
    response = client.post(label_url, {"label": "production", "version": "2", "override": "on", "reason": "mine"})
    assert response.status_code in (403, 404)
    assert brief.labels.get(name="production").version.number == 1


# --- the gate's settings ---------------------------------------------------------------------------------------


def change_form_data(template, **overrides):
    latest = template.versions.order_by("-number").first()
    data = {
        "name": template.name,
        "description": template.description,
        "system_prompt": latest.system_prompt,
        "user_template": latest.user_template,
        "variables": json.dumps(latest.variables),
        "default_params": json.dumps(latest.default_params),
        "length_variable": latest.length_variable,
        "output_format": latest.output_format,
        "model_alias": latest.model_alias,
        "checks": json.dumps(latest.checks),
        "note": "",
        "gate_dataset": "",
        "gate": "{}",
    }
    return {**data, **overrides}


def test_the_gate_json_is_checked_as_a_field_error(staff, chief, brief):
    url = reverse("admin:generation_prompttemplate_change", args=[brief.pk])
    assert 'name="gate"' in staff.get(url).content.decode()
    assert 'name="gate"' not in staff.get(reverse("admin:generation_prompttemplate_add")).content.decode()

    response = staff.post(url, change_form_data(brief, gate=json.dumps({"max_drop": {"chrf": -1}})))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["gate"] == ["gate.max_drop.chrf: A number, 0 or more (or null to not gate it)."]
    response = staff.post(url, change_form_data(brief, gate_dataset="nothing"))
    assert "No dataset 'nothing'" in response.context["adminform"].form.errors["gate_dataset"][0]

    dataset(brief, chief)
    response = staff.post(url, change_form_data(brief, gate_dataset="gate", gate=json.dumps({"max_drop": {"chrf": 5}})))
    assert response.status_code == 302, response.context["adminform"].form.errors
    brief.refresh_from_db()
    assert (brief.gate_dataset, brief.gate) == ("gate", {"max_drop": {"chrf": 5}})
    assert brief.versions.count() == 2  # the content did not change: no new version


def test_an_upload_past_the_parsers_limits_is_a_form_error(staff, brief):
    """A CSV value past csv's field limit: the upload page names its row and column, nothing is written."""
    upload = SimpleUploadedFile("cases.csv", b"text,reference\n" + b"a" * 140_000 + b",ok\n")
    response = staff.post(
        reverse("admin:generation_dataset_upload"), {"template": "brief", "name": "huge", "file": upload}
    )
    assert response.status_code == 200
    assert "Row 2, column text: 140,000 characters; at most 131,072." in response.content.decode()
    assert not Dataset.objects.filter(name="huge").exists()


def test_every_change_of_the_gate_is_kept_with_who_made_it(staff, chief, brief):
    """Turning the gate off for a move and on again after it leaves rows to read beside the label moves."""
    dataset(brief, chief)
    url = reverse("admin:generation_prompttemplate_change", args=[brief.pk])
    on = change_form_data(brief, gate_dataset="gate", gate=json.dumps({"max_drop": {"chrf": 5}}))
    assert staff.post(url, on).status_code == 302
    assert staff.post(url, change_form_data(brief)).status_code == 302  # blanked: the gate is off
    services.template_label_move(template=brief, label="production", version=brief.versions.get(number=2), user=chief)
    assert staff.post(url, on).status_code == 302  # and on again
    assert staff.post(url, on).status_code == 302  # the same again: nothing changed, nothing kept
    changes = list(brief.gate_changes.order_by("pk"))
    assert [(c.from_dataset, c.to_dataset) for c in changes] == [("", "gate"), ("gate", ""), ("", "gate")]
    off = changes[1]
    assert (off.changed_by, off.via, off.from_gate, off.to_gate) == (chief, "admin", {"max_drop": {"chrf": 5}}, {})
    listing = staff.get(reverse("admin:generation_gatechange_changelist")).content.decode()
    assert "brief" in listing and "chief" in listing
    assert staff.get(reverse("admin:generation_gatechange_change", args=[off.pk])).status_code == 200  # read-only
    assert staff.post(reverse("admin:generation_gatechange_delete", args=[off.pk]), {"post": "yes"}).status_code == 403
    assert brief.gate_changes.count() == 3


def test_a_test_run_needs_the_change_permission_and_a_dataset_from_jobs_the_add_permission(
    client, django_user_model, brief, user
):
    reviewer = django_user_model.objects.create_user(username="reviewer", password="pw-reviewer-123")
    reviewer.groups.add(Group.objects.get(name="reviewer"))
    job = services.job_create(user=user, template="brief", inputs={"text": "A council votes for a bridge."})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    JobOutput.objects.create(job=job, index=0, text="Council backs new bridge")
    services.review_move(Job.objects.get(pk=job.pk), user=user, to_state=ReviewState.IN_REVIEW)
    services.review_move(
        Job.objects.get(pk=job.pk), user=django_user_model.objects.get(pk=reviewer.pk), to_state=ReviewState.APPROVED
    )
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_prompttemplate"))
    client.force_login(viewer)
    version_url = reverse("admin:generation_template_version", args=[brief.pk, 2])
    page = client.get(version_url).content.decode()
    assert 'name="preview"' in page and 'name="test_run"' not in page  # a viewer previews; a test run queues a job
    response = client.post(version_url, {"in_text": "A storm hit the coast.", "test_run": "1"})
    assert response.status_code == 403 and Job.objects.count() == 1

    curator = django_user_model.objects.create_user("editor2", password="pw-editor2-123", is_staff=True)
    curator.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_prompttemplate", "change_prompttemplate"])
    )
    client.force_login(curator)
    change_url = reverse("admin:generation_prompttemplate_change", args=[brief.pk])
    assert 'id="dataset-from-jobs"' not in client.get(change_url).content.decode()
    response = client.post(
        reverse("admin:generation_template_dataset_from_jobs", args=[brief.pk]),
        {"ds-name": "approved", "ds-limit": "5"},
    )
    assert response.status_code == 403 and not Dataset.objects.exists()
    curator.user_permissions.add(Permission.objects.get(codename="add_dataset"))
    client.force_login(django_user_model.objects.get(pk=curator.pk))
    response = client.post(
        reverse("admin:generation_template_dataset_from_jobs", args=[brief.pk]),
        {"ds-name": "approved", "ds-limit": "5"},
    )
    assert response.status_code == 302 and Dataset.objects.get(template=brief).items.count() == 1


def test_a_case_is_titled_by_its_place_in_its_dataset(staff, chief, brief):
    data = dataset(brief, chief)
    assert str(data.items.get(index=1)) == "case 1 of brief/gate v1"
    page = staff.get(reverse("admin:generation_dataset_change", args=[data.pk])).content.decode()
    assert "case 1 of brief/gate v1" in page and "DatasetItem object" not in page
