"""The promotion gate as an admin walks it, in a real browser, on the bundled model through a real worker: a
dataset built from approved jobs on the template's page, the gate dataset set in the change form, a worse version
written in the change form, its experiment against production (progress, self-refresh, then the regression:
aggregates, chart, cases, diff, the refusal), the label move refused with the numbers, then an equal version whose
experiment (the baseline run reused) passes and whose move is recorded with that experiment."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from generation import services
from generation.admin_evaluation import experiment_url
from generation.models import (
    Dataset,
    Experiment,
    Job,
    JobStatus,
    LabelMove,
    ReviewState,
    TemplateLabel,
    TemplateVersion,
)
from tests.support.evaluation import STORIES, batch_invariant_models

pytestmark = pytest.mark.browser

NEWS = [
    *STORIES,
    "Heavy snow closed the main airport in Oslo for six hours on Friday, stranding thousands of travellers.",
    "A local bakery in Lyon won the national prize for the best croissant, beating 200 other bakers.",
]
PASSWORD = "pw-chief-walkthrough-123"
JOB_TIMEOUT_S = 180
EXPERIMENT_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module", autouse=True)
def _batch_invariant_worker():
    """The equal version's experiment runs its cases beside other cases than the reused baseline's did: with
    flash attention off it measures exactly what the baseline measured (tests/support/evaluation.py)."""
    with batch_invariant_models():
        yield


@pytest.fixture
def chief(django_user_model):
    return django_user_model.objects.create_superuser("chief", "chief@example.com", PASSWORD)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """Screenshots go to $OUT when there is one (a device run), else to the test's tmp_path; never committed."""
    path = Path(os.environ["OUT"]) if os.environ.get("OUT") else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


def approved_through_the_worker(owner, reviewer, stories) -> list[Job]:
    """Headline jobs on production, run by the test's worker, then sent to review and approved."""
    ids = [services.job_create(user=owner, template="headline", inputs={"text": s}).pk for s in stories]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while Job.objects.filter(pk__in=ids, finished_at__isnull=True).exists():
        left = list(Job.objects.filter(pk__in=ids, finished_at__isnull=True).values_list("status", flat=True))
        assert time.monotonic() < deadline, f"jobs still unfinished after {JOB_TIMEOUT_S} s: {left}"
        time.sleep(0.3)
    approved = []
    for pk in ids:
        job = Job.objects.get(pk=pk)
        assert job.status == JobStatus.SUCCEEDED, f"job {pk}: {job.status} {job.error}"
        services.output_choose(job.outputs.get(index=0), user=owner)
        services.review_move(job, user=owner, to_state=ReviewState.IN_REVIEW)
        approved.append(services.review_move(Job.objects.get(pk=pk), user=reviewer, to_state=ReviewState.APPROVED))
    return approved


def log_in_admin(page, base):
    page.goto(f"{base}/admin/login/")
    page.fill("#id_username", "chief")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_be_visible()


def open_change_page(page, base, template):
    page.goto(f"{base}/admin/generation/prompttemplate/{template.pk}/change/")
    # The row editor (studio/template-editor.js) has taken over the variables: its JSON is what the save posts.
    expect(page.locator("#te-variables tr.te-row")).to_have_count(1, timeout=15_000)


def save_and_continue(page):
    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator("ul.messagelist")).to_be_visible()
    expect(page.locator(".errornote")).to_have_count(0)


def fill_content(page, *, system_prompt: str, user_template: str, default_params: dict):
    page.fill("#id_system_prompt", system_prompt)
    page.fill("#id_user_template", user_template)
    page.fill("#id_default_params", json.dumps(default_params))


def start_experiment(page, base, template, number: int) -> Experiment:
    open_change_page(page, base, template)
    page.fill("#id_exp-version", str(number))
    page.select_option("#id_exp-dataset", "approved")
    page.fill("#id_exp-baseline", "production")
    page.locator("#experiment-start").click()
    expect(page.locator("ul.messagelist")).to_contain_text(f"Experiment started: v{number} against production.")
    experiment = Experiment.objects.filter(template=template, candidate__version__number=number).latest("created_at")
    assert page.url.endswith(experiment_url(experiment)), page.url
    return experiment


def wait_until_finished(page, experiment: Experiment):
    """The page refreshes itself (meta refresh, every 5 s) while the runs are measuring: no reload here."""
    status = page.locator("#experiment-status")
    try:
        expect(status).to_contain_text("Status: finished", timeout=EXPERIMENT_TIMEOUT_MS)
    except AssertionError:
        experiment.refresh_from_db()
        runs = {
            r.pk: (r.status, r.items.filter(measured_at__isnull=False).count())
            for r in (experiment.candidate, experiment.baseline)
        }
        raise AssertionError(
            f"the experiment page did not show finished within {EXPERIMENT_TIMEOUT_MS // 1000} s; "
            f"the page says {status.text_content()!r}; runs (status, measured): {runs}"
        ) from None
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_count(0)


def move_production(page, base, template, number: int):
    page.goto(f"{base}/admin/generation/prompttemplate/{template.pk}/versions/{number}/")
    form = page.locator("#label-move")
    label = form.locator("input[name=label]")
    expect(label).to_have_value("")  # no label is chosen for the curator: one click never publishes
    label.fill("production")
    form.get_by_role("button", name="Move label").click()
    expect(page.locator("ul.messagelist")).to_be_visible()


def production_of(template) -> TemplateVersion:
    return TemplateLabel.objects.get(template=template, name=TemplateLabel.PRODUCTION).version


def test_an_admin_walks_the_promotion_gate(
    live_server_url, page, worker_queue, fast_headline, chief, user, reviewer, out_dir
):
    base, template = live_server_url, fast_headline
    problems = []
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    # 1. Setup: five approved headline jobs, written by production (2 candidates of at most 16 tokens).
    production = production_of(template)
    assert production.default_params["max_new_tokens"] == 16 and production.default_params["n"] == 2
    jobs = approved_through_the_worker(user, reviewer, NEWS)
    approved_texts = [job.outputs.get(index=0).current_text for job in jobs]
    assert all(approved_texts), approved_texts

    # 2. A dataset from the approved jobs, in one action on the template's page.
    log_in_admin(page, base)
    open_change_page(page, base, template)
    expect(page.locator("#experiments")).to_contain_text("No dataset yet")
    page.fill("#id_ds-name", "approved")
    page.fill("#id_ds-limit", "5")
    page.locator("#dataset-from-jobs").click()
    expect(page.locator("ul.messagelist")).to_contain_text("Built headline/approved v1 from approved jobs.")
    dataset = Dataset.objects.get(template=template, name="approved")
    items = list(dataset.items.order_by("index"))
    assert [i.reference for i in items] == approved_texts, "the references are the approved texts, oldest first"
    assert [i.inputs["text"] for i in items] == NEWS
    assert [i.seed for i in items] == [job.params["seed"] for job in jobs]
    expect(page.locator("#datasets table.ds-list")).to_contain_text("approved v1")

    # 3. The gate dataset, set in the change form's "Promotion gate" fieldset: no new version (content unchanged).
    versions_before = template.versions.count()
    gate_field = page.locator("#id_gate_dataset")
    expect(gate_field).to_be_visible()
    gate_field.fill("approved")
    save_and_continue(page)
    expect(page.locator("ul.messagelist")).not_to_contain_text("Saved as version")
    template.refresh_from_db()
    assert template.gate_dataset == "approved"
    assert template.versions.count() == versions_before, "saving only the gate created a version"
    expect(page.locator("#experiments")).to_contain_text("Moving a protected label needs a passed experiment")

    # 4. A worse version, written in the change form: 40-word headlines asked for, 2 tokens allowed (a headline
    # needs 3 to 20 words, so every case breaks the contract).
    worse_params = {**production.default_params, "max_new_tokens": 2}
    fill_content(
        page,
        system_prompt="You are a news editor. You write long, detailed headlines of exactly 40 words.",
        user_template="Write a 40-word headline for this news story. Reply with the headline only, on one line."
        "\n\nStory: {text}",
        default_params=worse_params,
    )
    page.fill("#id_note", "40-word headlines")
    save_and_continue(page)
    worse = template.versions.order_by("-number").first()
    expect(page.locator("ul.messagelist")).to_contain_text(f"Saved as version {worse.number}")
    assert worse.number == production.number + 1 and worse.default_params == worse_params
    assert "40-word" in worse.user_template

    # 5. Its experiment against production on "approved": progress while running, then the regression.
    refused = start_experiment(page, base, template, worse.number)
    status = page.locator("#experiment-status")
    expect(status).to_contain_text("cases measured")
    expect(status).to_contain_text("this page refreshes every 5 seconds")
    expect(page.locator('meta[http-equiv="refresh"]')).to_have_attribute("content", "5")
    wait_until_finished(page, refused)
    first = page.locator("#aggregates tbody tr").first
    expect(first.locator("th")).to_have_text("Contract met")
    expect(first).to_have_class("ex-regressed")
    expect(first).to_contain_text("▼ worse")
    expect(page.locator("svg#rates-chart")).to_be_visible()
    expect(page.locator("svg#rates-chart .ex-chart-regressed").first).to_contain_text("Contract met")
    regressed = page.locator("section.ex-case-regressed")
    expect(regressed).to_have_count(5)
    expect(regressed.first.locator("h3")).to_contain_text("▼ worse: contract")
    expect(regressed.first.locator(".ex-side-candidate .ex-checks")).to_contain_text("Contract: not met")
    expect(page.locator("details.ex-diff").first).to_be_visible()
    expect(page.locator("details.ex-diff .diff-body del").first).to_be_attached()
    gate = page.locator("#gate")
    expect(gate).to_have_class("ex-gate ex-refused")
    expect(gate).to_contain_text("Refused")
    expect(gate.locator("ul.ex-failures li").filter(has_text="contract_rate")).to_have_count(1)
    page.screenshot(path=str(out_dir / "experiment-refused.png"), full_page=True)
    refused.refresh_from_db()
    assert refused.gate["passed"] is False
    failure = next(f for f in refused.gate["failures"] if "contract_rate" in f)

    # 6. Moving production to the worse version: refused with the numbers; production stays.
    moves_before = LabelMove.objects.count()
    move_production(page, base, template, worse.number)
    errors = page.locator("ul.messagelist li.error")
    expect(errors.first).to_contain_text(f"The promotion gate refused moving production to v{worse.number}.")
    expect(errors.first.get_by_role("link", name="See the experiment.")).to_have_attribute(
        "href", experiment_url(refused)
    )
    expect(errors.filter(has_text="contract_rate")).to_have_text(failure)
    page.screenshot(path=str(out_dir / "label-move-refused.png"), full_page=True)
    assert production_of(template) == production, "the refused move changed production"
    assert LabelMove.objects.count() == moves_before, "a refused move was recorded"

    # 7. An equal version (the same prompt and params, another help text on the input, in the row editor).
    open_change_page(page, base, template)
    fill_content(
        page,
        system_prompt=production.system_prompt,
        user_template=production.user_template,
        default_params=production.default_params,
    )
    page.locator("#te-variables tr.te-row").first.locator("[data-key=help]").fill("The story the headlines are for.")
    page.fill("#id_note", "same prompt")
    save_and_continue(page)
    equal = template.versions.order_by("-number").first()
    expect(page.locator("ul.messagelist")).to_contain_text(f"Saved as version {equal.number}")
    assert equal.number == worse.number + 1
    expected = {**production.content(), "variables": [{**production.variables[0], "help": equal.variables[0]["help"]}]}
    assert equal.content() == expected, "the equal version differs from production beyond the help text"
    assert equal.variables[0]["help"] == "The story the headlines are for."

    passed = start_experiment(page, base, template, equal.number)
    assert passed.baseline_id == refused.baseline_id, "the finished baseline run was not reused"
    wait_until_finished(page, passed)
    passed.refresh_from_db()
    identical = passed.comparison["identical_cases"]
    assert passed.gate["passed"] is True, f"the equal version was refused ({identical}/5 identical): {passed.gate}"
    assert identical == 5, f"the same prompt and seeds wrote other text in {5 - identical} of 5 cases"
    expect(page.locator("#gate")).to_have_class("ex-gate ex-passed")
    expect(page.locator("#gate")).to_contain_text(
        f"Passed: no gated metric dropped by more than allowed; v{equal.number} may be moved to production."
    )
    expect(page.locator("#aggregates + p.help")).to_contain_text("0 cases got worse · 5 wrote exactly the same")

    move_production(page, base, template, equal.number)
    success = page.locator("ul.messagelist li.success")
    expect(success).to_have_text(f"Production now points at v{equal.number}.")  # the admin capitalises messages
    assert production_of(template) == equal
    move = LabelMove.objects.filter(label__template=template, label__name="production").latest("moved_at")
    assert (move.from_version, move.to_version, move.moved_by) == (production, equal, chief)
    assert move.experiment == passed and move.overridden is False

    page.goto(f"{base}/admin/generation/labelmove/")
    link = page.locator(f'#result_list a[href="{experiment_url(passed)}"]')
    expect(link).to_have_text(f"v{equal.number} vs v{production.number}")

    assert problems == []  # no script error, nothing refused by the CSP
