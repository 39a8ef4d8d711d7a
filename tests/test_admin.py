"""Editors' flow in the Django admin, as a staff user: create, preview, test-run, version, diff, publish."""

import json

import pytest
from django.urls import reverse
from django.utils.html import escape

from generation import services
from generation.models import Job, PromptTemplate

pytestmark = pytest.mark.django_db

VARIABLES = [
    {"name": "product", "type": "text", "required": True, "max_length": 100, "help": "The product's name"},
    {"name": "tone", "type": "choice", "choices": ["playful", "serious"], "default": "playful"},
]


def form_data(**overrides):
    data = {
        "slug": "tagline",
        "kind": "writing",
        "name": "Tagline",
        "description": "A product tagline.",
        "system_prompt": "You write taglines.",
        "user_template": "Write a {tone} tagline for {product}.",
        "variables": json.dumps(VARIABLES),
        "default_params": json.dumps({"max_new_tokens": 24, "temperature": 0.7}),
        "length_variable": "",
        "output_format": "headline",
        "model_alias": "default",
        "note": "",
    }
    data.update(overrides)
    return data


@pytest.fixture
def tagline(staff):
    response = staff.post(reverse("admin:generation_prompttemplate_add"), form_data())
    assert response.status_code == 302, response.content.decode()[:3000]
    return PromptTemplate.objects.get(slug="tagline")


def version_url(template, number):
    return reverse("admin:generation_template_version", args=[template.pk, number])


def test_non_staff_cannot_reach_the_admin_pages(client, user, tagline):
    client.force_login(user)
    for url in (reverse("admin:generation_prompttemplate_changelist"), version_url(tagline, 1)):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_create_a_template_with_two_variables(tagline):
    version = tagline.versions.get()
    assert version.number == 1 and [v["name"] for v in version.variables] == ["product", "tone"]
    assert {label.name for label in tagline.labels.all()} == {"production", "staging"}


def test_list_search_and_filter(staff, tagline):
    url = reverse("admin:generation_prompttemplate_changelist")
    html = staff.get(url, {"kind__exact": "writing"}).content.decode()
    assert "tagline" in html and "product-description" in html and ">headline<" not in html
    assert "production → v1" in html
    assert "tagline" in staff.get(url, {"q": "tagline for"}).content.decode()  # searches the prompt text
    assert "tagline" in staff.get(url, {"label": "staging"}).content.decode()


def test_invalid_content_is_a_form_error_and_saves_nothing(staff):
    response = staff.post(
        reverse("admin:generation_prompttemplate_add"), form_data(user_template="For {product} and {colour}")
    )
    assert response.status_code == 200
    assert "Uses undeclared variables: colour." in response.content.decode()
    assert not PromptTemplate.objects.filter(slug="tagline").exists()


def test_edit_creates_a_version_and_no_change_creates_none(staff, tagline):
    change = reverse("admin:generation_prompttemplate_change", args=[tagline.pk])
    staff.post(change, form_data(system_prompt="You write short taglines.", note="shorter"))
    staff.post(change, form_data(system_prompt="You write short taglines.", note="again"))
    assert list(tagline.versions.order_by("number").values_list("number", "note")) == [
        (1, "First version"),
        (2, "shorter"),
    ]
    assert services.resolve_version(tagline).number == 1  # production stays until a label is moved
    html = staff.get(change).content.decode()
    assert "diff with v1" in html


def test_diff_between_versions(staff, tagline):
    staff.post(
        reverse("admin:generation_prompttemplate_change", args=[tagline.pk]),
        form_data(system_prompt="You write short taglines."),
    )
    html = staff.get(reverse("admin:generation_template_diff", args=[tagline.pk]), {"a": 1, "b": 2}).content.decode()
    assert '<span class="del">-You write taglines.</span>' in html
    assert '<span class="add">+You write short taglines.</span>' in html
    assert "user_template <small>(unchanged)</small>" in html


def test_preview_shows_the_exact_text_and_its_token_count(staff, tagline, tiny_engine):
    services.model_info_publish("default", tiny_engine.describe())
    response = staff.post(
        version_url(tagline, 1), {"in_product": "<b>Acme</b> kettle", "in_tone": "serious", "preview": "1"}
    )
    html = " ".join(response.content.decode().split())
    messages = [
        {"role": "system", "content": "You write taglines."},
        {"role": "user", "content": "Write a serious tagline for <b>Acme</b> kettle."},
    ]
    expected = tiny_engine.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert (
        f"<strong>{tiny_engine.count_tokens(messages)}</strong> prompt tokens + 24 for the output of a 256-token context: fits"
        in html
    )
    assert " ".join(escape(expected).split()) in html  # the exact text, shown escaped
    assert not Job.objects.exists()


def test_preview_names_bad_inputs(staff, tagline):
    html = staff.post(
        version_url(tagline, 1), {"in_product": "", "in_tone": "serious", "preview": "1"}
    ).content.decode()
    assert "This field is required." in html


def test_test_run_queues_a_job_on_that_version_and_links_to_it(staff, tagline, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as sent:
        response = staff.post(
            version_url(tagline, 1), {"in_product": "Acme kettle", "in_tone": "playful", "test_run": "1"}, follow=True
        )
    job = Job.objects.get()
    assert job.template_version.number == 1 and job.inputs == {"product": "Acme kettle", "tone": "playful"}
    assert len(sent) == 1
    assert f'href="{reverse("job-detail", args=[job.pk])}"' in response.content.decode()


def test_a_test_run_is_held_by_the_desk_s_budget_and_names_it(staff, tagline):
    """The curator's test run spends their desk's tokens like any job: over the budget it is refused on the
    page, naming the budget, and nothing is queued."""
    from generation.models import Desk

    Desk.objects.filter(is_default=True).update(tokens_per_day=10)
    response = staff.post(
        version_url(tagline, 1), {"in_product": "Acme kettle", "in_tone": "playful", "test_run": "1"}, follow=True
    )
    assert response.status_code == 200
    assert "desk:newsroom daily" in response.content.decode()
    assert not Job.objects.exists()


def test_publish_v2_to_staging_then_production_old_jobs_keep_v1(
    staff, tagline, user, django_capture_on_commit_callbacks
):
    old = services.job_create(user=user, template="tagline", inputs={"product": "kettle"})
    staff.post(
        reverse("admin:generation_prompttemplate_change", args=[tagline.pk]), form_data(system_prompt="Be witty.")
    )
    label_url = reverse("admin:generation_template_label", args=[tagline.pk])
    staff.post(label_url, {"label": "staging", "version": 2})
    assert (
        services.resolve_version(tagline, label="staging").number == 2 and services.resolve_version(tagline).number == 1
    )
    response = staff.post(label_url, {"label": "production", "version": 2}, follow=True)
    assert "Production now points at v2." in response.content.decode()
    new = services.job_create(user=user, template="tagline", inputs={"product": "kettle"})
    old.refresh_from_db()
    assert old.template_version.number == 1 and new.template_version.number == 2
    assert new.messages[0]["content"] == "Be witty."
    assert staff.post(label_url, {"label": "production", "version": 9}).status_code == 302  # refused with a message
    assert services.resolve_version(tagline).number == 2


def test_ratings_per_template_version(staff, user):
    from generation.models import JobOutput, JobStatus

    job = services.job_create(user=user, kind="headline", inputs={"text": "story"})
    Job.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    outputs = [JobOutput.objects.create(job=job, index=i, text=f"Headline {i}") for i in range(3)]
    services.feedback_set(outputs[0], user=user, rating=1)
    services.feedback_set(outputs[1], user=user, rating=1, comment="crisp")
    services.feedback_set(outputs[2], user=user, rating=-1, comment="too vague")
    template = PromptTemplate.objects.get(slug="headline")
    page = staff.get(reverse("admin:generation_prompttemplate_change", args=[template.pk])).content.decode()
    assert "good 2 · bad 1" in page
    page = staff.get(version_url(template, job.template_version.number)).content.decode()
    assert "good 2 · bad 1" in page and "too vague" in page


def test_json_typed_into_the_admin_s_model_forms_is_read_by_the_safe_parser():
    """A dataset case's inputs, typed as JSON by staff: nested past the interpreter's stack, a form error on its
    field, not a RecursionError (a 500). (A desk's house style has a structured editor: tests/test_admin_desks.py.)"""
    from generation.admin_evaluation import DatasetItemForm

    deep = "[" * 100_000 + "]" * 100_000
    item = DatasetItemForm(data={"index": 0, "inputs": deep, "reference": "", "checks": "{}"})
    assert not item.is_valid() and "Nested deeper than 32 levels" in item.errors["inputs"][0]
