"""Production settings (aigc_site/settings.py): secure by default with DEBUG off, DEBUG on only under `make run`."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import environ
import pytest
from django.core.management.utils import get_random_secret_key

ROOT = Path(__file__).resolve().parent.parent


def production_env(**overrides) -> dict:
    """What a production process gets: a real secret key and nothing else of ours (no .env file either), plus
    the services this machine's tests use."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DJANGO_ENV_FILE": "",
        "DJANGO_SETTINGS_MODULE": "aigc_site.settings",
        "DJANGO_SECRET_KEY": get_random_secret_key(),
        "DJANGO_DEBUG": "0",
    }
    env.update({name: os.environ[name] for name in ("DATABASE_URL", "REDIS_URL") if name in os.environ})
    env.update(overrides)
    return env


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def settings_in(env: dict, *names: str) -> dict:
    """The named settings as a process started with `env` sees them."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}))"
    )
    out = run(["-c", code], env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_check_deploy_is_silent_with_production_settings():
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert out.returncode == 0, out.stdout + out.stderr
    assert "WARNINGS" not in out.stdout + out.stderr and "no issues" in out.stdout


def test_check_deploy_fails_when_https_is_turned_off():
    """The check above can fail: it is not silent whatever the settings."""
    out = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(DJANGO_SSL_REDIRECT="0"))
    assert out.returncode != 0 and "security.W008" in out.stdout + out.stderr


def test_no_process_starts_without_a_secret_key_when_debug_is_off():
    for missing in ({"DJANGO_SECRET_KEY": ""}, {}):
        env = production_env(**missing)
        if not missing:
            del env["DJANGO_SECRET_KEY"]
        out = run(["manage.py", "check"], env)
        assert out.returncode != 0 and "ImproperlyConfigured: Set DJANGO_SECRET_KEY" in out.stderr


def test_the_placeholder_secret_of_env_example_is_refused_at_start():
    """Copying .env.example to .env and starting is the easy mistake: the key would be public. Refused with
    DEBUG on too, and as a fallback key; the placeholder tested is read from .env.example itself."""
    line = next(x for x in (ROOT / ".env.example").read_text().splitlines() if x.startswith("DJANGO_SECRET_KEY="))
    placeholder = line.split("=", 1)[1].strip()
    assert placeholder
    for overrides in ({"DJANGO_SECRET_KEY": placeholder}, {"DJANGO_SECRET_KEY": placeholder, "DJANGO_DEBUG": "1"}):
        out = run(["manage.py", "check"], production_env(**overrides))
        assert out.returncode != 0 and "ImproperlyConfigured" in out.stderr and ".env.example" in out.stderr, out.stderr
    out = run(["manage.py", "check"], production_env(DJANGO_SECRET_KEY_FALLBACKS=f"old-key,{placeholder}"))
    assert out.returncode != 0 and "DJANGO_SECRET_KEY_FALLBACKS" in out.stderr, out.stderr
    assert run(["manage.py", "check"], production_env()).returncode == 0  # a real key still starts


def test_the_secret_key_is_taken_as_it_is():
    key = "$" + get_random_secret_key()  # not the name of another variable, as django-environ would read it
    assert settings_in(production_env(DJANGO_SECRET_KEY=key), "SECRET_KEY") == {"SECRET_KEY": key}


def test_debug_is_off_unless_asked_for():
    env = production_env()
    del env["DJANGO_DEBUG"]
    assert settings_in(env, "DEBUG") == {"DEBUG": False}


def test_production_defaults_are_https_only_with_secure_cookies():
    expected = {
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_PROXY_SSL_HEADER": None,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_SAMESITE": "Lax",
    }
    assert settings_in(production_env(), *expected) == expected


def test_make_run_settings_serve_plain_http():
    expected = {"SECURE_SSL_REDIRECT": False, "SECURE_HSTS_SECONDS": 0, "SESSION_COOKIE_SECURE": False}
    assert settings_in(production_env(DJANGO_DEBUG="1"), *expected) == expected


def test_switches_for_a_tls_proxy_and_for_plain_http():
    env = production_env(DJANGO_BEHIND_TLS_PROXY="1", DJANGO_SSL_REDIRECT="0", DJANGO_HSTS_PRELOAD="0")
    expected = {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_PRELOAD": False,
    }
    assert settings_in(env, *expected) == expected


@pytest.fixture
def https_only(settings):
    """Production's HTTPS settings, behind a TLS proxy, in this process."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = settings.SECURE_HSTS_PRELOAD = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


@pytest.mark.django_db
def test_plain_http_is_redirected_but_health_probes_are_not(client, https_only):
    response = client.get("/accounts/login/?next=/jobs/")
    assert response.status_code == 301 and response["Location"] == "https://testserver/accounts/login/?next=/jobs/"
    for probe in ("/healthz", "/metrics"):  # load balancers probe over plain HTTP
        assert client.get(probe).status_code != 301, probe


@pytest.mark.django_db
def test_https_through_the_proxy_gets_hsts(client, https_only):
    response = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


TRUE = "|".join(re.escape(v) for v in environ.Env.BOOLEAN_TRUE_STRINGS)
DEBUG_ON = re.compile(rf"""DJANGO_DEBUG["']?\s*[:=]\s*["']?({TRUE})\b""", re.IGNORECASE)


@pytest.mark.parametrize("name", ["Procfile", "docker-compose.yml", "Dockerfile", ".env.example", ".ci/run"])
def test_no_deployment_file_turns_debug_on(name):
    text = (ROOT / name).read_text()
    assert not DEBUG_ON.search(text), f"{name} turns DEBUG on"


def test_only_make_run_turns_debug_on_in_the_makefile():
    target, targets_with_debug = None, set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        if match := re.match(r"^([\w.$()/-]+)\s*:(?!=)", line):
            target = match.group(1)
        if DEBUG_ON.search(line):
            targets_with_debug.add(target)
    assert targets_with_debug == {"run"}


def test_mail_comes_from_email_url_and_without_it_no_reset_by_mail_is_offered():
    names = ("EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_USE_TLS", "EMAIL_HOST_USER", "PASSWORD_RESET_BY_MAIL")
    unset = settings_in(production_env(), *names)
    assert unset["PASSWORD_RESET_BY_MAIL"] is False and unset["EMAIL_BACKEND"].endswith("dummy.EmailBackend")
    smtp = settings_in(production_env(EMAIL_URL="smtp+tls://studio:s3cret@smtp.example.com:587"), *names)
    assert smtp == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "smtp.example.com",
        "EMAIL_PORT": 587,
        "EMAIL_USE_TLS": True,
        "EMAIL_HOST_USER": "studio",
        "PASSWORD_RESET_BY_MAIL": True,
    }
