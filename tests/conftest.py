"""Shared fixtures: users, API clients, and a tiny real Llama engine for fast tests."""

from __future__ import annotations

import time

import pytest

from tests.support.tiny_llama import build_llama3_style

# Real Redis, worker and database-URL fixtures, shared by tests/integration and tests/browser; small evaluation
# setups (a curator, a fast headline template) shared by the evaluation tests; the adapter alias of the training
# tests.
pytest_plugins = ["tests.support.live", "tests.support.evaluation", "tests.support.training"]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_llama3_style(tmp_path_factory.mktemp("tiny-llama3"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir, tmp_path_factory):
    from generation.engine import EngineConfig, load_engine

    return load_engine(
        EngineConfig(model_path=str(tiny_model_dir), cache_dir=str(tmp_path_factory.mktemp("cache")), dtype="float32")
    )


@pytest.fixture(scope="session")
def gguf_engine(tmp_path_factory):
    """The bundled SmolLM2 GGUF served by llama.cpp (loads in about a second). Flash attention off: then a row
    computes exactly what it computes alone, which the batching tests assert (bench reports the agreement with
    it on, llama.cpp's default)."""
    from generation.engine import EngineConfig, load_engine

    cache = tmp_path_factory.mktemp("gguf-cache")
    return load_engine(EngineConfig(backend="llamacpp", cache_dir=str(cache), max_rows=16, flash_attn="off"))


@pytest.fixture
def sandbox_config():
    """Reconfigure the sandbox for one test (`sandbox_config(bwrap="/nonexistent")` forces it unavailable, as a
    container without bubblewrap or namespaces is); the configuration is restored afterwards."""
    from dataclasses import replace

    from generation import sandbox

    saved = sandbox.current()
    yield lambda **changes: sandbox.configure(replace(saved, **changes))
    sandbox.configure(saved)


@pytest.fixture
def fresh_minute():
    """Request rates are counted per clock minute (services/limits.py): a test that counts requests up to a limit
    starts with at least 15 s of its minute left, so the count is never split across two minutes."""
    left = 60 - time.time() % 60
    if left < 15:
        time.sleep(left + 0.05)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="editor", password="pw-editor-123")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user(username="intruder", password="pw-intruder-123")


@pytest.fixture
def chief(django_user_model):
    """A superuser."""
    return django_user_model.objects.create_superuser("chief", "chief@example.com", "pw-chief-123")


@pytest.fixture
def staff(client, chief):
    """The test client logged in as a superuser: the admin's pages."""
    client.force_login(chief)
    return client


@pytest.fixture
def api_key(user):
    from generation import services

    return services.api_key_create(user, name="tests")[1]


@pytest.fixture
def api(api_key):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    return client


@pytest.fixture(autouse=True)
def _plain_static_storage(settings):
    """Production serves hashed static names from collectstatic's manifest; tests render pages without
    running collectstatic first."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _plain_http(settings):
    """The test client speaks plain HTTP; production's redirect to HTTPS is tested in tests/test_settings.py."""
    settings.SECURE_SSL_REDIRECT = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 takes most of a second per password on small CPUs; tests do not need its strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def pytest_collection_modifyitems(items):
    """The tests that run real processes go last: the fast ones report first, and the database flushes that
    transactional tests end with cannot take the seeded templates from under the others.

    Transactional tests must also ask for serialized_rollback: one that does not is flushed afterwards with
    post_migrate (content types, permissions) re-run, and every serialized test after it then fails to restore
    the seeded rows. Caught here, by name, rather than as IntegrityErrors in unrelated tests."""
    for item in items:
        marker = item.get_closest_marker("django_db")
        if marker and marker.kwargs.get("transaction") and not marker.kwargs.get("serialized_rollback"):
            raise pytest.UsageError(f"{item.nodeid}: django_db(transaction=True) needs serialized_rollback=True too")

    def order(item) -> int:
        if item.path.parent.name == "browser":
            return 2
        return 1 if item.get_closest_marker("integration") or item.path.parent.name == "integration" else 0

    items[:] = sorted(items, key=order)
