"""The template change form's live panel: the preview-draft endpoint (errors keyed by field, the preview with its
token count, the diff against production, staff only) and the per-row errors the form hands to the row editor.
The editor itself runs in a browser: tests/browser/test_template_editor.py."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from generation import services
from generation.models import ModelInfo, PromptTemplate
from tests.test_admin import VARIABLES, form_data

pytestmark = pytest.mark.django_db


@pytest.fixture
def tagline(staff):
    response = staff.post(reverse("admin:generation_prompttemplate_add"), form_data())
    assert response.status_code == 302, response.content.decode()[:3000]
    return PromptTemplate.objects.get(slug="tagline")


def draft(**overrides):
    """The content fields as the change form holds them (raw text), with overrides."""
    data = form_data(**overrides)
    return {
        f: data.get(f, "")
        for f in (
            "system_prompt",
            "user_template",
            "variables",
            "default_params",
            "length_variable",
            "output_format",
            "model_alias",
            "checks",
        )
    }


def post(client, url, content, inputs=None):
    return client.post(url, json.dumps({"content": content, "inputs": inputs or {}}), content_type="application/json")


def preview_url(template=None):
    if template is None:
        return reverse("admin:generation_template_preview_draft_add")
    return reverse("admin:generation_template_preview_draft", args=[template.pk])


def test_the_change_form_carries_the_editor(staff, tagline):
    html = staff.get(reverse("admin:generation_prompttemplate_change", args=[tagline.pk])).content.decode()
    assert 'src="/static/studio/template-editor.js"' in html
    assert f'data-preview-url="{preview_url(tagline)}"' in html
    assert '<script id="te-variable-errors" type="application/json">{}</script>' in html
    assert "Changes against production (v1)" in html
    html = staff.get(reverse("admin:generation_prompttemplate_add")).content.decode()
    assert f'data-preview-url="{preview_url()}"' in html and "Changes against production" not in html


def test_a_failed_save_hands_each_rows_errors_to_the_editor(staff, tagline):
    variables = [
        {"name": "product", "type": "text", "max_length": 5, "default": "far too long"},
        {"name": "tone", "type": "choice", "choices": ["playful"], "max_length": 0},
        {"name": "words", "type": "number", "min": 10, "max": 5},
    ]
    response = staff.post(
        reverse("admin:generation_prompttemplate_change", args=[tagline.pk]),
        form_data(variables=json.dumps(variables), user_template="{product} {tone} {words}"),
    )
    assert response.status_code == 200
    rows = response.context["adminform"].form.variable_errors
    assert set(rows) == {"0", "1", "2"}
    assert rows["0"] == {"default": ["At most 5 characters (got 12)."]}
    assert rows["1"] == {"max_length": ["A whole number of characters, at least 1."]}
    assert rows["2"] == {"min": ["Must not be above the maximum (5)."]}
    html = response.content.decode()
    assert '<script id="te-variable-errors" type="application/json">{"0": {"default":' in html
    assert "variables.2.min: Must not be above the maximum (5)." in html  # still readable without the script
    assert tagline.versions.count() == 1


def test_invalid_drafts_are_400_keyed_by_field(staff, tagline):
    variables = [*VARIABLES, {"name": "n", "type": "text", "max_length": "lots", "default": "x"}]
    response = post(
        staff,
        preview_url(tagline),
        draft(variables=json.dumps(variables), user_template="For {product} in {colour} {n}"),
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["variables.2.max_length"] == ["A whole number of characters, at least 1."]
    assert errors["user_template"] == ["Uses undeclared variables: colour."]
    assert response.json()["preview"] is None

    response = post(staff, preview_url(tagline), draft(default_params="{oops", output_format="nope"))
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["default_params"] == ["Enter a valid JSON."]
    assert "output_format" in errors

    assert staff.post(preview_url(tagline), "[1, 2]", content_type="application/json").status_code == 400
    assert staff.get(preview_url(tagline)).status_code == 405
    assert tagline.versions.count() == 1  # a draft is never saved


def test_sample_inputs_are_checked_against_the_draft(staff, tagline):
    response = post(staff, preview_url(tagline), draft(), {"product": "", "tone": "grim"})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["inputs.product"] == ["This field is required."]
    assert errors["inputs.tone"] == ["Must be one of: playful, serious."]


def test_preview_without_a_published_model_has_messages_but_no_tokens(staff, tagline):
    assert not ModelInfo.objects.exists()
    response = post(staff, preview_url(tagline), draft(), {"product": "Acme kettle"})
    assert response.status_code == 200, response.content
    preview = response.json()["preview"]
    assert preview["messages"][-1] == {"role": "user", "content": "Write a playful tagline for Acme kettle."}
    assert "prompt_tokens" not in preview


def test_preview_counts_the_drafts_tokens_and_diffs_it_against_production(staff, tagline, tiny_engine):
    services.model_info_publish("default", tiny_engine.describe())
    content = draft(system_prompt="You write short taglines.", user_template="A {tone} line for {product}, please.")
    response = post(staff, preview_url(tagline), content, {"product": "<b>Acme</b>", "tone": "serious"})
    assert response.status_code == 200, response.content
    body = response.json()
    messages = [
        {"role": "system", "content": "You write short taglines."},
        {"role": "user", "content": "A serious line for <b>Acme</b>, please."},
    ]
    preview = body["preview"]
    assert preview["messages"] == messages
    assert preview["prompt_tokens"] == tiny_engine.count_tokens(messages)
    assert preview["prompt_text"] == tiny_engine.tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert preview["context_length"] == 256 and preview["max_new_tokens"] == 24 and preview["fits"] is True

    diff = body["diff"]
    assert diff["against"] == 1
    fields = {row["field"]: row for row in diff["fields"]}
    assert fields["system_prompt"]["changed"] and fields["system_prompt"]["lines"] == [
        "@@ -1 +1 @@",
        "-You write taglines.",
        "+You write short taglines.",
    ]
    assert fields["user_template"]["changed"]
    unchanged = ("variables", "default_params", "checks", "output_format", "model_alias", "length_variable")
    assert not any(fields[f]["changed"] for f in unchanged)  # the JSON fields compare as saved
    assert tagline.versions.count() == 1


def test_the_diff_is_against_production_not_the_latest_version(staff, tagline):
    change = reverse("admin:generation_prompttemplate_change", args=[tagline.pk])
    staff.post(change, form_data(system_prompt="Version two."))
    assert tagline.versions.count() == 2
    body = post(staff, preview_url(tagline), draft(system_prompt="Version two."), {"product": "kettle"}).json()
    fields = {row["field"]: row for row in body["diff"]["fields"]}
    assert body["diff"]["against"] == 1 and fields["system_prompt"]["lines"][1:] == [
        "-You write taglines.",
        "+Version two.",
    ]


def test_the_add_form_previews_without_a_diff(staff):
    response = post(staff, preview_url(), draft(), {"product": "kettle"})
    assert response.status_code == 200, response.content
    assert response.json()["diff"] is None and response.json()["preview"]["messages"]
    assert not PromptTemplate.objects.filter(slug="tagline").exists()


def test_non_staff_and_staff_without_the_permission_are_refused(client, user, tagline, django_user_model):
    client.force_login(user)
    for url in (preview_url(tagline), preview_url()):
        response = post(client, url, draft())
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    viewer = django_user_model.objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_prompttemplate"))
    client.force_login(viewer)
    assert post(client, preview_url(tagline), draft()).status_code == 403
    assert post(client, preview_url(), draft()).status_code == 403


def test_the_endpoint_needs_the_csrf_token(tagline, django_user_model):
    from django.test import Client

    admin = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-boss-123")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin)
    assert post(strict, preview_url(tagline), draft()).status_code == 403


def test_json_nested_past_reason_is_a_400_keyed_by_field(staff, tagline):
    """The preview's body, and the JSON fields inside the draft, read by the one safe parser: too deep is a 400
    naming where, never a RecursionError (a 500)."""
    deep = "[" * 100_000 + "]" * 100_000
    response = post(staff, preview_url(tagline), draft(variables=deep))
    assert response.status_code == 400
    assert "Nested deeper than 32 levels" in response.json()["errors"]["variables"][0]
    body = '{"content": {}, "inputs": {"product": ' + deep + "}}"
    response = staff.post(preview_url(tagline), body, content_type="application/json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["inputs.product" + ".0" * 31]
    assert tagline.versions.count() == 1
