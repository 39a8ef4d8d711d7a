"""Creating and running jobs against the real database and a tiny real Llama engine."""

import pytest
from django.core.exceptions import ValidationError

from generation import services
from generation.models import Job, JobOutput, JobStatus, PromptTemplate

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."


def create(user, **kw):
    return services.job_create(user=user, **{"kind": "headline", "inputs": {"text": STORY}, **kw})


def test_default_templates_exist_for_every_kind():
    assert set(PromptTemplate.objects.filter(is_default=True).values_list("kind", flat=True)) == {
        "writing",
        "summary",
        "headline",
        "code",
    }


def test_create_renders_the_prompt_records_a_seed_and_enqueues_on_commit(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = create(user)
    assert len(callbacks) == 1  # sent to the broker only once the row is committed
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and job.template.slug == "headline"
    assert job.params["n"] == 5 and isinstance(job.params["seed"], int)
    assert STORY in job.messages[-1]["content"] and job.messages[0]["role"] == "system"


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"inputs": {}}, "inputs.text"),
        ({"inputs": {"text": STORY, "title": "x"}}, "inputs.title"),
        ({"params": {"n": 50}}, "params.n"),
        ({"kind": "poetry"}, "kind"),
        ({"kind": None}, "kind"),
        ({"kind": None, "template": "no-such-template"}, "template"),
        ({"kind": "code", "template": "headline"}, "kind"),
    ],
)
def test_bad_requests_name_the_field_and_write_nothing(user, kw, field):
    with pytest.raises(ValidationError) as info:
        create(user, **kw)
    assert field in info.value.message_dict
    assert Job.objects.count() == 0


def test_run_stores_outputs_usage_and_model(user, tiny_engine, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = create(user, kind="summary", inputs={"text": STORY}, params={"max_new_tokens": 10, "temperature": 0})
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert job.attempts == 1 and job.started_at <= job.finished_at
    assert job.model_name == tiny_engine.model_name and job.weights_sha256 == tiny_engine.weights_sha256
    assert job.prompt_tokens == tiny_engine.count_tokens(job.messages)
    assert job.completion_tokens >= 1  # more than 10 when an empty reply was sampled again
    assert [o.index for o in job.outputs.all()] == [0]


def test_headline_job_gives_n_distinct_clean_lines(user, tiny_engine, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = create(user, params={"n": 4, "max_new_tokens": 8, "seed": 3})
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    texts = [o.text for o in job.outputs.all()]
    assert job.status == JobStatus.SUCCEEDED, job.error
    assert len(texts) == 4 and len({t.casefold() for t in texts}) == 4
    assert all(t and "\n" not in t and t == t.strip() for t in texts)


def test_rerun_with_the_same_seed_replays_the_same_text(user, tiny_engine, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        first = create(user, params={"n": 3, "max_new_tokens": 8, "seed": 11})
        second = create(user, params={"n": 3, "max_new_tokens": 8, "seed": 11})
    for job in (first, second):
        services.job_run(job.pk, engine=tiny_engine)
    texts = [list(JobOutput.objects.filter(job=j).values_list("text", flat=True)) for j in (first, second)]
    assert texts[0] == texts[1]


def test_a_failing_job_ends_failed_with_a_reason_and_the_next_one_runs(
    user, tiny_engine, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        too_long = create(user, inputs={"text": "bridge " * 400})  # beyond the tiny model's 256-token context
        fine = create(user, params={"max_new_tokens": 4, "n": 1})
    services.job_run(too_long.pk, engine=tiny_engine)
    services.job_run(fine.pk, engine=tiny_engine)
    too_long.refresh_from_db()
    fine.refresh_from_db()
    assert too_long.status == JobStatus.FAILED
    assert "exceed the model's context of 256 tokens" in too_long.error
    assert not too_long.outputs.exists()
    assert fine.status == JobStatus.SUCCEEDED


def test_finished_or_cancelled_jobs_are_never_run_again(user, tiny_engine, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = create(user, params={"max_new_tokens": 4, "n": 1})
    services.job_run(job.pk, engine=tiny_engine)
    services.job_run(job.pk, engine=tiny_engine)  # a redelivered message
    job.refresh_from_db()
    assert job.attempts == 1 and job.outputs.count() == 1
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.attempts == 1


def test_a_job_redelivered_too_often_fails_with_the_reason(
    user, tiny_engine, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = create(user)
    Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=settings.AIGC["MAX_ATTEMPTS"])
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "Gave up after 3 attempts" in job.error


def test_docstrings_are_placed_without_changing_the_code(user, tiny_engine, django_capture_on_commit_callbacks):
    import ast

    code = "def add(a, b):\n    return a + b\n\n\ndef neg(x):\n    '''Already there.'''\n    return -x\n"
    with django_capture_on_commit_callbacks(execute=False):
        job = services.job_create(user=user, template="code-docstrings", inputs={"code": code}, params={"seed": 3})
    services.job_run(job.pk, engine=tiny_engine)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, job.error
    result = job.outputs.get().text
    tree = ast.parse(result)
    docs = {f.name: ast.get_docstring(f) for f in tree.body}
    assert docs["neg"] == "Already there." and docs["add"]  # the tiny model's words, whatever they are
    assert ast.dump(tree.body[0].body[-1]) == ast.dump(ast.parse(code).body[0].body[0])  # the body is untouched


def test_docstrings_for_code_that_does_not_parse_is_refused(user):
    with pytest.raises(ValidationError) as info:
        services.job_create(user=user, template="code-docstrings", inputs={"code": "def broken(:\n    pass"})
    assert info.value.message_dict["inputs.code"][0].startswith("Does not parse as Python (line 1")
    assert not Job.objects.exists()
