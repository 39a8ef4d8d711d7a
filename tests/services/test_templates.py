"""Template versions, labels, previews, context checks, export and import."""

import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from generation import selectors, services
from generation.models import ImmutableError, Job, LabelMove, PromptTemplate, TemplateVersion

pytestmark = pytest.mark.django_db

CONTENT = {
    "system_prompt": "You write for {audience}.",
    "user_template": "Write a teaser of about {words} words about: {topic}",
    "variables": [
        {"name": "topic", "type": "text", "required": True, "max_length": 200},
        {"name": "audience", "type": "choice", "choices": ["kids", "adults"], "default": "adults"},
        {"name": "words", "type": "number", "min": 10, "max": 200, "default": 40},
    ],
    "default_params": {"max_new_tokens": 64, "temperature": 0.5},
    "length_variable": "words",
}


@pytest.fixture
def template(user):
    return services.template_create(slug="teaser", kind="writing", name="Teaser", user=user, **CONTENT)


@pytest.fixture
def published_tiny(tiny_engine):
    """The tiny engine published as the default model (context 256), as a worker does at start."""
    services.model_info_publish("default", tiny_engine.describe())
    return tiny_engine


def new_job(user, **kw):
    return services.job_create(user=user, **{"template": "teaser", "inputs": {"topic": "bridges"}, **kw})


def test_create_makes_version_1_labelled_production_and_staging(template):
    v1 = template.versions.get()
    assert v1.number == 1 and v1.content()["variables"] == CONTENT["variables"]
    assert {label.name: label.version.number for label in template.labels.all()} == {"production": 1, "staging": 1}


def test_versions_are_immutable(template):
    v1 = template.versions.get()
    v1.user_template = "changed"
    with pytest.raises(ImmutableError):
        v1.save()
    assert TemplateVersion.objects.get(pk=v1.pk).user_template == CONTENT["user_template"]


def test_an_edit_is_a_new_version_and_no_change_is_no_version(template, user):
    v2, created = services.template_version_create(
        template=template, user=user, **{**CONTENT, "system_prompt": "Be brief."}
    )
    assert created and v2.number == 2
    same, created = services.template_version_create(
        template=template, user=user, **{**CONTENT, "system_prompt": "Be brief."}
    )
    assert not created and same == v2
    assert template.versions.count() == 2


def test_moving_labels_publishes_and_rolls_back_with_history(template, user):
    v2, _ = services.template_version_create(template=template, user=user, **{**CONTENT, "system_prompt": "Be brief."})
    services.template_label_move(template=template, label="staging", version=v2, user=user)
    assert services.resolve_version(template).number == 1
    assert services.resolve_version(template, label="staging") == v2
    services.template_label_move(template=template, label="production", version=v2, user=user)
    assert services.resolve_version(template) == v2
    services.template_label_move(
        template=template, label="production", version=template.versions.get(number=1), user=user
    )
    assert services.resolve_version(template).number == 1  # rolled back
    moves = [
        (m.label.name, m.from_version and m.from_version.number, m.to_version.number)
        for m in LabelMove.objects.order_by("pk")
    ]
    assert moves[-3:] == [("staging", 1, 2), ("production", 1, 2), ("production", 2, 1)]


def test_jobs_pin_their_version_and_keep_it_after_a_publish(template, user):
    old = new_job(user)
    v2, _ = services.template_version_create(template=template, user=user, **{**CONTENT, "system_prompt": "Be brief."})
    services.template_label_move(template=template, label="production", version=v2, user=user)
    new = new_job(user)
    pinned = new_job(user, version=1)
    staged = new_job(user, label="staging")
    assert [j.template_version.number for j in (old, new, pinned, staged)] == [1, 2, 1, 1]
    assert Job.objects.get(pk=old.pk).messages[0]["content"] == "You write for adults."


@pytest.mark.parametrize(
    "kw, field",
    [({"version": 9}, "version"), ({"label": "canary"}, "label"), ({"version": 1, "label": "staging"}, "version")],
)
def test_unknown_version_or_label_is_named(template, user, kw, field):
    with pytest.raises(ValidationError) as info:
        new_job(user, **kw)
    assert field in info.value.message_dict
    assert not Job.objects.exists()


def test_typed_inputs_every_error_named_at_once(template, user):
    with pytest.raises(ValidationError) as info:
        new_job(user, inputs={"topic": "x" * 201, "audience": "robots", "words": "many", "tone": "dry"})
    assert set(info.value.message_dict) == {"inputs.topic", "inputs.audience", "inputs.words", "inputs.tone"}
    with pytest.raises(ValidationError) as info:
        new_job(user, inputs={"topic": "bridges", "words": 5000})
    assert info.value.message_dict == {"inputs.words": ["Must be between 10 and 200."]}


def test_a_word_budget_sets_the_token_budget_unless_given(template, user):
    assert (
        new_job(user, inputs={"topic": "bridges", "words": 100}).params["max_new_tokens"]
        == 100 * 1.7 * 1.4 // 1 + 1 + 16
    )
    assert (
        new_job(user, inputs={"topic": "bridges", "words": "100"}, params={"max_new_tokens": 20}).params[
            "max_new_tokens"
        ]
        == 20
    )


@pytest.mark.parametrize(
    "change, field",
    [
        ({"user_template": "About {topic} and {colour}"}, "user_template"),
        ({"system_prompt": "{secret.__class__}"}, "system_prompt"),
        ({"user_template": ""}, "user_template"),
        ({"variables": [{"name": "topic", "type": "date"}]}, "variables.0.type"),
        ({"variables": [{"name": "2topic"}]}, "variables.0.name"),
        ({"variables": [{"name": "a", "type": "choice"}]}, "variables.0.choices"),
        ({"variables": [{"name": "a", "type": "number", "default": "lots"}]}, "variables.0.default"),
        ({"variables": [{"name": "a"}, {"name": "a"}]}, "variables.1.name"),
        ({"variables": "topic"}, "variables"),
        ({"length_variable": "topic"}, "length_variable"),
        ({"default_params": {"temperature": 5}}, "default_params.temperature"),
        ({"model_alias": "gpt-9"}, "model_alias"),
        ({"output_format": "html"}, "output_format"),
    ],
)
def test_bad_version_content_is_refused_naming_the_field(template, user, change, field):
    with pytest.raises(ValidationError) as info:
        services.template_version_create(template=template, user=user, **{**CONTENT, **change})
    assert field in info.value.message_dict
    assert template.versions.count() == 1


def test_preview_without_a_published_model_shows_the_messages(template):
    preview = services.template_preview(template.versions.get(), {"topic": "bridges"})
    assert preview["messages"][-1]["content"] == "Write a teaser of about 40 words about: bridges"
    assert "prompt_tokens" not in preview


def test_preview_shows_the_exact_prompt_and_its_tokens(template, published_tiny):
    preview = services.template_preview(template.versions.get(), {"topic": "桥梁 bridges"})
    messages = preview["messages"]
    assert preview["prompt_text"] == published_tiny.tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert preview["prompt_tokens"] == published_tiny.count_tokens(messages)
    assert preview["context_length"] == 256 and preview["fits"] is True


def test_a_prompt_that_cannot_fit_the_context_is_refused(template, user, published_tiny):
    with pytest.raises(ValidationError) as info:
        new_job(user, inputs={"topic": "bridge over the river"}, params={"max_new_tokens": 250})
    (message,) = info.value.message_dict["inputs.topic"]
    assert "over the model's context of 256 tokens" in message
    assert not Job.objects.exists()
    new_job(user, inputs={"topic": "bridge"}, params={"max_new_tokens": 20})  # a short one fits


def test_export_import_round_trip(template, user):
    v2, _ = services.template_version_create(template=template, user=user, **{**CONTENT, "system_prompt": "Be brief."})
    services.template_label_move(template=template, label="production", version=v2, user=user)
    exported = services.templates_export(["teaser"])
    PromptTemplate.objects.filter(slug="teaser").delete()
    assert services.templates_import(exported) == {"templates": 1, "versions": 2, "labels": 2}
    assert services.templates_export(["teaser"]) == exported
    assert services.templates_import(exported) == {"templates": 0, "versions": 0, "labels": 0}  # idempotent


def test_import_refuses_a_conflicting_version_and_writes_nothing(template):
    exported = services.templates_export(["teaser"])
    exported["templates"][0]["versions"][0]["user_template"] = "Rewritten {topic}"
    exported["templates"][0]["versions"].append({**exported["templates"][0]["versions"][0], "number": 2})
    with pytest.raises(ValidationError, match="teaser v1 differs"):
        services.templates_import(exported)
    assert template.versions.count() == 1


def test_default_templates_cover_every_task_and_are_valid():
    slugs = {t.slug: t.kind for t in PromptTemplate.objects.all()}
    assert slugs == {
        "article": "writing",
        "blog-post": "writing",
        "product-description": "writing",
        "social-post": "writing",
        "summary": "summary",
        "summary-bullets": "summary",
        "headline": "headline",
        "seo-title": "headline",
        "code": "code",
        "code-explain": "code",
        "code-docstrings": "code",
        "chat": "writing",
    }
    for template in PromptTemplate.objects.all():
        version = services.resolve_version(template)
        services.templates.check_content(version.content())
    assert {t.kind for t in PromptTemplate.objects.filter(is_default=True)} == {
        "writing",
        "summary",
        "headline",
        "code",
    }
    assert selectors.template_default_for_kind("code").slug == "code"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_first_placements_of_a_label_both_succeed():
    """Two curators placing a new label at the same moment: the second waits for the first and finds its label,
    never an IntegrityError. The race is made certain, not left to timing: a third connection holds the
    version's row, so both placements wait inside their transactions (past their look for the label, at the
    insert) until it lets go, and only then go on together."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite takes its one write lock at BEGIN: two placements never overlap there")
    from django.db import connections

    template = PromptTemplate.objects.get(slug="headline")
    version = services.resolve_version(template)
    failures: list[Exception] = []
    start = threading.Barrier(2)

    def place():
        try:
            start.wait()
            services.template_label_move(template=template, label="canary", version=version)
        except Exception as exc:
            failures.append(exc)
        finally:
            connection.close()  # this thread's own

    holder, watcher = connections.create_connection("default"), None
    try:
        holder.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute("SELECT id FROM generation_templateversion WHERE id = %s FOR UPDATE", [version.pk])
        threads = [threading.Thread(target=place) for _ in range(2)]
        for thread in threads:
            thread.start()
        watcher = connections.create_connection("default")
        with watcher.cursor() as watch:
            for _ in range(300):  # both placements blocked on a lock (the version's row, or the first's)
                watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                if watch.fetchone()[0] >= 2:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the two placements never both waited")
    finally:
        holder.rollback()
        holder.close()
        if watcher is not None:
            watcher.close()
    for thread in threads:
        thread.join(30)
    assert failures == []
    assert template.labels.get(name="canary").version == version
    assert LabelMove.objects.filter(label__name="canary").count() == 1
