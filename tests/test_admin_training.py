"""LoRA adapters in the admin, as a superuser: the template page's section (its runs, the pairs it has now, the
form that starts a run), a run's page (progress, the loss chart, what a run that succeeded left, cancelling) and
its live JSON; nobody but staff with the template permissions gets in. No training runs here: runs are rows
whose progress and losses are set in the database, and a start's task is captured, never sent."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from generation import selectors, services
from generation.engine.lora import LoraParams
from generation.models import (
    Desk,
    DeskRole,
    EvaluationRun,
    Experiment,
    Membership,
    PromptTemplate,
    RunStatus,
    TrainingRun,
    TrainingStatus,
)
from tests.support.desks import desk, join
from tests.support.training import approved

pytestmark = pytest.mark.django_db


@pytest.fixture
def headline():
    return PromptTemplate.objects.get(slug="headline")


@pytest.fixture
def edits(user, reviewer):
    """Five approved jobs whose headline an editor changed, and one approved as the model wrote it."""
    for i in range(5):
        approved(user, reviewer, f"Story {i} about the Elm River bridge vote.", wrote=f"H{i}", edit=f"Edited {i}")
    approved(user, reviewer, "A story nobody edited.", wrote="As written")


def a_run(template, user, **fields) -> TrainingRun:
    defaults = {
        "template": template,
        "base_version": services.resolve_version(template),
        "model_alias": "tuned",
        "params": LoraParams().as_dict(),
        "train_pairs": 4,
        "heldout_pairs": 1,
        "created_by": user,
    }
    return TrainingRun.objects.create(**{**defaults, **fields})


def change_url(template) -> str:
    return reverse("admin:generation_prompttemplate_change", args=[template.pk])


def run_url(run) -> str:
    return reverse("admin:generation_template_training_run", args=[run.template_id, run.pk])


def start_url(template) -> str:
    return reverse("admin:generation_template_training_start", args=[template.pk])


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


FORM = {
    "tr-desk": "",
    "tr-edited_only": "on",
    "tr-rank": "8",
    "tr-alpha": "16",
    "tr-epochs": "2",
    "tr-learning_rate": "0.001",
    "tr-target_modules": "q_proj, v_proj",
}


# --- the template's page ---------------------------------------------------------------------------------------


def test_the_section_lists_the_runs_and_the_pairs_there_are_now(staff, chief, headline, edits):
    run = a_run(
        headline, chief, status=TrainingStatus.RUNNING, progress={"step": 40, "total_steps": 120, "loss": 1.8342}
    )
    html = staff.get(change_url(headline)).content.decode()
    assert html.index('id="experiments"') < html.index('id="training"')
    row = re.search(r'<table class="tr-list" id="training-runs">.*?</table>', html, re.S)[0]
    assert f'href="{run_url(run)}"' in row and "Running" in row
    assert "40/120" in row and "1.8342" in row and "4 / 1" in row

    edited = selectors.training_pairs(headline)
    held = sum(p.split == "heldout" for p in edited)
    assert len(edited) == 5 and held >= 1
    pairs = re.search(r'<p id="training-pairs">.*?</p>', html, re.S)[0]
    assert f"<strong>{5 - held}</strong> to train on and <strong>{held}</strong> held out" in pairs
    every = selectors.training_pairs(headline, edited_only=False)
    every_held = sum(p.split == "heldout" for p in every)
    assert len(every) == 6
    assert f"every approved job: {6 - every_held} to train on and {every_held} held out" in pairs

    # The form, with LoraParams' defaults, submits to its own form placed after the change form.
    defaults = LoraParams()
    assert f'name="tr-rank" value="{defaults.rank}"' in html
    assert f'name="tr-epochs" value="{defaults.epochs}"' in html
    assert f'value="{", ".join(defaults.target_modules)}"' in html
    assert re.search(r'<input type="checkbox" name="tr-edited_only"[^>]*checked', html)
    assert 'form="training-start-form"' in html and f'action="{start_url(headline)}" id="training-start-form"' in html


def test_a_start_from_the_form_queues_a_run_with_the_given_params(
    staff, chief, headline, edits, tuned, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff.post(start_url(headline), FORM)
    run = TrainingRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_url(run)
    assert len(callbacks) == 1  # the training task, sent once the run is committed
    assert (run.status, run.created_by, run.edited_only) == (TrainingStatus.QUEUED, chief, True)
    assert (run.desk, run.all_desks) == (Desk.objects.get(is_default=True), False)  # the only desk with edits
    assert run.params == {
        **LoraParams().as_dict(),
        "rank": 8,
        "alpha": 16,
        "epochs": 2,
        "learning_rate": 0.001,
        "target_modules": ["q_proj", "v_proj"],
    }
    assert run.train_pairs + run.heldout_pairs == 5 and run.heldout_pairs >= 1

    page = staff.get(response["Location"])
    assert any("Training queued" in m for m in page_messages(page))
    listed = staff.get(change_url(headline)).content.decode()
    assert f'href="{run_url(run)}"' in listed


def test_a_refused_start_names_the_field_and_queues_nothing(
    staff, headline, edits, tuned, django_capture_on_commit_callbacks
):
    def refusal(**changes):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = staff.post(start_url(headline), {**FORM, **changes}, follow=True)
        assert response.redirect_chain[-1][0] == change_url(headline) and not callbacks
        return " ".join(page_messages(response))

    assert "params.rank: Must be between 1 and 256." in refusal(**{"tr-rank": "0"})
    assert "params.target_modules:" in refusal(**{"tr-target_modules": " , "})
    assert "params.learning_rate:" in refusal(**{"tr-learning_rate": "2"})
    assert "rank: Enter a whole number." in refusal(**{"tr-rank": "eight"})
    other = services.template_create(
        slug="empty",
        kind="writing",
        name="Empty",
        user_template="{text}",
        variables=[{"name": "text", "type": "text", "required": True}],
    )
    with django_capture_on_commit_callbacks(execute=False):
        response = staff.post(start_url(other), FORM, follow=True)
    assert any("template: 'empty' has 0 approved edit(s)" in m for m in page_messages(response))
    assert not TrainingRun.objects.exists()


def test_without_an_alias_that_serves_adapters_the_start_says_so(staff, headline, edits):
    response = staff.post(start_url(headline), FORM, follow=True)
    assert any(m.startswith("No adapter is being trained: model: No alias 'tuned'") for m in page_messages(response))
    assert not TrainingRun.objects.exists()


# --- a run's page ----------------------------------------------------------------------------------------------


PROGRESS = {
    "step": 40,
    "total_steps": 120,
    "epoch": 1,
    "loss": 1.83421,
    "tokens_per_s": 2310.6,
    "eta_s": 245.4,
    "elapsed_s": 61,
}


def test_the_run_page_shows_the_progress_and_the_loss_chart(staff, chief, headline):
    run = a_run(
        headline,
        chief,
        status=TrainingStatus.RUNNING,
        progress=PROGRESS,
        losses=[2.5, 2.0, 1.5, 1.25],
        started_at=timezone.now(),
    )
    response = staff.get(run_url(run))
    html = response.content.decode()
    progress = re.search(r'<table id="training-progress".*?</table>', html, re.S)[0]
    for shown in ("40 of 120", "1 of 3", "1.8342", "2,311", "4:05", "1:01"):
        assert f">{shown}</td>" in progress, shown
    assert '<progress id="training-bar" class="tr-bar" max="120" value="40">' in html

    chart = re.search(r'<svg id="loss-chart".*?</svg>', html, re.S)[0]
    points = re.search(r'<polyline class="tr-chart-line" points="([^"]+)"', chart)[1].split()
    assert len(points) == 4
    ys = [float(p.split(",")[1]) for p in points]
    assert ys == sorted(ys)  # the loss falls: each point lower on the chart (SVG's y grows downwards)
    assert ">2.5000<" in chart and ">1.2500<" in chart and ">step 4<" in chart
    main = re.search(r'<div id="content-main".*', html, re.S)[0]
    assert "style=" not in main and "<script" not in main  # the CSP: no inline style, no inline script

    # Live: a static script polls the run's JSON while it is not final.
    progress_url = reverse("admin:generation_template_training_progress", args=[headline.pk, run.pk])
    assert 'src="/static/studio/training-run.js"' in html and f'data-progress-url="{progress_url}"' in html
    live = staff.get(progress_url).json()
    assert (live["status"], live["final"], live["step"], live["eta"], live["loss"]) == (
        "running",
        False,
        "40 of 120",
        "4:05",
        "1.8342",
    )
    TrainingRun.objects.filter(pk=run.pk).update(progress={**PROGRESS, "step": 41, "eta_s": 59.6})
    assert staff.get(progress_url).json()["step"] == "41 of 120"
    assert staff.get(progress_url).json()["eta"] == "1:00"
    TrainingRun.objects.filter(pk=run.pk).update(status=TrainingStatus.FAILED, error="OutOfMemoryError: CUDA")
    assert staff.get(progress_url).json()["final"] is True  # the script reloads the page then

    failed = staff.get(run_url(run)).content.decode()
    assert "training-run.js" not in failed and 'id="training-cancel"' not in failed
    assert re.search(r'<pre id="training-error"[^>]*>OutOfMemoryError: CUDA</pre>', failed)


def test_a_succeeded_run_links_to_its_version_dataset_and_experiment(staff, chief, headline, tuned):
    base = services.resolve_version(headline)
    version, _ = services.template_version_create(
        template=headline, user=chief, note="adapter", **{**base.content(), "model_alias": "tuned"}
    )
    data = services.dataset_create(
        template=headline, name="heldout-1", cases=[{"inputs": {"text": "A storm hit."}}], user=chief
    )
    runs = [
        EvaluationRun.objects.create(
            template=headline, version=v, dataset=data, model_alias="tuned", status=RunStatus.RUNNING, created_by=chief
        )
        for v in (version, base)
    ]
    experiment = Experiment.objects.create(template=headline, candidate=runs[0], baseline=runs[1], created_by=chief)
    run = a_run(
        headline,
        chief,
        status=TrainingStatus.SUCCEEDED,
        progress={**PROGRESS, "step": 120, "eta_s": 0},
        losses=[2.0, 1.0],
        data_sha256="d" * 64,
        base_sha256="b" * 64,
        adapter_sha256="a" * 64,
        version=version,
        dataset=data,
        experiment=experiment,
        finished_at=timezone.now(),
    )
    html = staff.get(run_url(run)).content.decode()
    result = re.search(r'<section id="training-result".*?</section>', html, re.S)[0]
    assert f'href="{reverse("admin:generation_template_version", args=[headline.pk, version.number])}"' in result
    assert f'href="{reverse("admin:generation_dataset_change", args=[data.pk])}">heldout-1 v1</a>' in result
    assert f'href="{reverse("admin:generation_template_experiment", args=[headline.pk, experiment.pk])}"' in result
    hashes = re.search(r'<table id="training-hashes".*?</table>', html, re.S)[0]
    assert all(c * 64 in hashes for c in "dba")
    assert "training-run.js" not in html and 'id="training-cancel"' not in html


def test_a_run_of_another_template_is_not_found_under_this_one(staff, chief, headline):
    run = a_run(headline, chief)
    summary = PromptTemplate.objects.get(slug="summary")
    assert staff.get(reverse("admin:generation_template_training_run", args=[summary.pk, run.pk])).status_code == 404


def test_cancel_from_the_page(staff, chief, headline):
    queued = a_run(headline, chief)
    html = staff.get(run_url(queued)).content.decode()
    cancel_url = reverse("admin:generation_template_training_cancel", args=[headline.pk, queued.pk])
    assert f'action="{cancel_url}"' in html
    response = staff.post(cancel_url)
    assert response.status_code == 302 and response["Location"] == run_url(queued)
    queued.refresh_from_db()
    assert queued.status == TrainingStatus.CANCELLED and queued.finished_at is not None
    again = staff.post(cancel_url, follow=True)
    assert any("status: This training run has already cancelled." in m for m in page_messages(again))
    assert 'id="training-cancel"' not in again.content.decode()

    running = a_run(headline, chief, status=TrainingStatus.RUNNING, progress=PROGRESS)
    staff.post(reverse("admin:generation_template_training_cancel", args=[headline.pk, running.pk]))
    running.refresh_from_db()
    assert running.status == TrainingStatus.RUNNING and running.cancel_requested  # it stops at its next step
    page = staff.get(run_url(running)).content.decode()
    assert re.search(r'<span id="training-cancel-note" data-live-flag="cancel_requested">', page)
    assert staff.get(reverse("admin:generation_template_training_progress", args=[headline.pk, running.pk])).json()[
        "cancel_requested"
    ]


def test_only_staff_with_the_template_permissions_get_in(client, user, curator, chief, headline, tuned, edits):
    run = a_run(headline, chief)
    urls = {
        "page": run_url(run),
        "progress": reverse("admin:generation_template_training_progress", args=[headline.pk, run.pk]),
    }
    posts = {
        "start": start_url(headline),
        "cancel": reverse("admin:generation_template_training_cancel", args=[headline.pk, run.pk]),
    }
    client.force_login(user)  # an editor, not staff
    for url in [*urls.values(), change_url(headline)]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    for url in posts.values():
        response = client.post(url, FORM)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), url
    client.force_login(curator)  # staff, but without the permission to see or change templates
    for url in [*urls.values(), *posts.values()]:
        assert (client.post(url, FORM) if url in posts.values() else client.get(url)).status_code == 404, url
    run.refresh_from_db()
    assert TrainingRun.objects.count() == 1 and run.status == TrainingStatus.QUEUED and not run.cancel_requested


def test_desks_shares_are_shown_and_mixing_them_is_a_choice(
    staff, chief, headline, user, other_user, reviewer, tuned, django_capture_on_commit_callbacks
):
    sport = desk("sport")
    join(user, sport)
    Membership.objects.create(desk=sport, user=reviewer, role=DeskRole.REVIEWER)
    for i in range(3):
        approved(user, reviewer, f"Sport story {i} about the derby.", wrote=f"S{i}", edit=f"Sport {i}")
    for i in range(2):
        approved(other_user, reviewer, f"News story {i} about the bridge.", wrote=f"N{i}", edit=f"News {i}")
    approved(other_user, reviewer, "A story nobody edited.", wrote="As written")
    default = Desk.objects.get(is_default=True).slug

    html = staff.get(change_url(headline)).content.decode()
    shares = re.search(r'<table class="tr-list" id="training-desks">.*?</table>', html, re.S)[0]
    assert f"<tr><td>{default}</td><td>2</td><td>3</td></tr>" in shares
    assert "<tr><td>sport</td><td>3</td><td>3</td></tr>" in shares

    with django_capture_on_commit_callbacks(execute=False):
        refused = staff.post(start_url(headline), FORM, follow=True)
    assert any("desk:" in m and "sport: 3" in m for m in page_messages(refused))
    assert not TrainingRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        staff.post(start_url(headline), {**FORM, "tr-all_desks": "on"})
    run = TrainingRun.objects.get()
    assert (run.desk, run.all_desks, run.desk_pairs) == (None, True, {default: 2, "sport": 3})
    page = staff.get(run_url(run)).content.decode()
    row = re.search(r'<tr id="training-desk-pairs">.*?</tr>', page, re.S)[0]
    assert "mixed by choice" in row and f"{default}: 2, sport: 3" in row


def test_the_admin_index_lists_training_runs_read_only_and_a_row_opens_the_run_page(staff, chief, headline):
    run = a_run(headline, chief, status=TrainingStatus.RUNNING, train_pairs=8, heldout_pairs=2)
    changelist = reverse("admin:generation_trainingrun_changelist")
    assert changelist in staff.get(reverse("admin:index")).content.decode()
    page = staff.get(changelist)
    html = page.content.decode()
    assert page.status_code == 200 and str(run.pk)[:8] in html and "headline" in html and "8 + 2" in html
    assert reverse("admin:generation_trainingrun_add") not in html  # started from the template's page only
    opened = staff.get(reverse("admin:generation_trainingrun_change", args=[run.pk]))
    assert opened.status_code == 302 and opened["Location"] == run_url(run)
    assert staff.get(reverse("admin:generation_trainingrun_change", args=["not-a-run"])).status_code == 404
