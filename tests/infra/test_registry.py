"""The model registry: what a deployment may configure, each alias's queue, and jobs routed to it."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from generation import services
from generation.infra import redis_client, registry


@pytest.mark.parametrize(
    "models, message",
    [
        ({}, "at least one alias"),
        ({"big model": {}}, "letters, digits"),
        ({"big": {"backend": "tgi"}}, "unknown backend 'tgi'"),
        ({"big": {"backend": "openai", "url": "http://vllm:8000/v1"}}, "needs model"),
        ({"big": {"path": "/m", "gpu": 1}}, "unknown key(s) gpu"),
        ({"big": {"backend": "openai", "url": "u", "model": "m", "device": "cuda"}}, "unknown key(s) device"),
        ({"big": {"path": "/m", "languages": "zh"}}, "languages is a list"),
    ],
)
def test_a_bad_registry_is_refused_at_start_naming_the_alias(models, message):
    with pytest.raises(ImproperlyConfigured, match=message.replace("(", r"\(").replace(")", r"\)")):
        registry.validate(models)


def test_a_good_registry_passes():
    registry.validate({"default": {}, "big": {"backend": "openai", "url": "http://vllm:8000/v1", "model": "m"}})


def test_each_alias_has_its_own_queue_and_a_worker_hosts_the_aliases_it_consumes(settings):
    settings.CELERY_TASK_DEFAULT_QUEUE = "generation"
    settings.AIGC = {**settings.AIGC, "MODELS": {"default": {}, "big": {}, "gpu2": {"queue": "h100"}}}
    assert [registry.queue_for(a) for a in registry.aliases()] == ["generation", "generation.big", "h100"]
    assert registry.aliases_for_queues(["h100", "webhooks"]) == ["gpu2"]
    # No backend and no path: the bundled GGUF through llama.cpp, with its defaults.
    assert registry.entry("big") == {
        "backend": "llamacpp",
        "path": "",
        "name": "",
        "threads": 0,
        "context": 2048,
        "max_rows": 32,
        "flash_attn": "auto",
    }
    with pytest.raises(ImproperlyConfigured, match="unknown model alias 'nope'"):
        registry.entry("nope")


@pytest.mark.django_db
def test_a_job_is_sent_to_its_alias_queue_only(user, settings, django_capture_on_commit_callbacks):
    """Through the real broker: the message lands on the alias's queue, which only its workers consume."""
    base = "routing-test"
    settings.CELERY_TASK_DEFAULT_QUEUE = base
    settings.AIGC = {**settings.AIGC, "MODELS": {"default": {}, "big": {}}}
    redis = redis_client.client()
    redis.delete(base, f"{base}.big")
    try:
        with django_capture_on_commit_callbacks(execute=True):  # sent as on commit
            job = services.job_create(
                user=user, kind="summary", inputs={"text": "A short text to sum up."}, model_alias="big"
            )
        assert job.model_alias == "big"
        assert (redis.llen(base), redis.llen(f"{base}.big")) == (0, 1)
        with django_capture_on_commit_callbacks(execute=True):
            services.job_create(
                user=user, kind="summary", inputs={"text": "Another short text."}
            )  # the template's alias
        assert (redis.llen(base), redis.llen(f"{base}.big")) == (1, 1)
    finally:
        redis.delete(base, f"{base}.big")


@pytest.mark.django_db
def test_a_job_for_an_alias_the_registry_lacks_is_refused_and_nothing_is_written(user, settings):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        services.job_create(user=user, kind="summary", inputs={"text": "Some text."}, model_alias="gone")
    assert "model" in refused.value.message_dict and not user.jobs.exists()


@pytest.mark.django_db
def test_openai_clients_name_an_alias_and_the_job_runs_on_it(api, user, settings):
    settings.AIGC = {**settings.AIGC, "MODELS": {"default": {}, "big": {}}}
    models = api.get("/v1/models").json()["data"]
    assert [m["id"] for m in models][:2] == ["default", "big"]
    unknown = api.post(
        "/v1/chat/completions", {"model": "huge", "messages": [{"role": "user", "content": "Hi"}]}, format="json"
    )
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "model"
    assert not user.jobs.exists()


def test_the_backend_follows_the_path_unless_named(settings):
    settings.AIGC = {
        **settings.AIGC,
        "MODELS": {
            "gguf": {"path": "/models/m.gguf"},
            "folder": {"path": "/models/llama-8b"},
            "old": {"backend": "local"},
            "named": {"backend": "transformers"},
        },
    }
    assert {a: registry.entry(a)["backend"] for a in registry.aliases()} == {
        "gguf": "llamacpp",
        "folder": "transformers",
        "old": "transformers",
        "named": "transformers",
    }
    assert registry.entry("folder")["device"] == "auto"


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"device": "cuda"}, "unknown key.*device for the llamacpp backend"),
        ({"backend": "llamacpp", "context": 0}, "context must be a whole number of at least 1"),
        ({"backend": "llamacpp", "threads": "8"}, "threads must be a whole number"),
        ({"backend": "llamacpp", "flash_attn": "yes"}, "flash_attn is auto, on or off"),
        ({"backend": "vllm"}, "unknown backend 'vllm'"),
    ],
)
def test_a_bad_local_entry_is_refused_at_start(entry, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        registry.validate({"default": entry})


@pytest.mark.django_db
def test_an_alias_declares_its_languages_and_the_bundled_model_writes_english(settings, user):
    settings.AIGC = {
        **settings.AIGC,
        "MODELS": {"default": {}, "qwen": {"path": "/m/qwen.gguf", "languages": ["en", "zh"]}, "big": {"path": "/m"}},
    }
    assert registry.languages("default") == ["en"]
    assert registry.languages("qwen") == ["en", "zh"] and registry.languages("big") is None

    from generation import selectors

    story = "城市议会周二投票决定在榆树河上修建一座新桥，耗资四千万美元。"
    chinese = services.job_create(user=user, kind="summary", inputs={"text": story})
    english = services.job_create(user=user, kind="summary", inputs={"text": "The council voted for a bridge."})
    qwen = services.job_create(user=user, kind="summary", inputs={"text": story}, model_alias="qwen")
    notice = selectors.job_notice(chinese) or ""
    assert "Chinese" in notice and "'default' writes English" in notice and "operations guide" in notice
    assert "Chinese" not in (selectors.job_notice(english) or "")
    assert "Chinese" not in (selectors.job_notice(qwen) or "")
