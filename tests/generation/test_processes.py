"""Processes started from Python (generation/processes.py) run as production runs them, over plain HTTP."""

from generation import processes


def test_the_web_server_serves_plain_http_without_redirecting_to_https(monkeypatch, tmp_path):
    """It listens on 127.0.0.1 without TLS: with DEBUG off the redirect to HTTPS would lead nowhere."""
    started = {}
    monkeypatch.setattr(processes.subprocess, "Popen", lambda args, **kwargs: started.update(args=args, **kwargs))
    env = processes.process_env(DJANGO_DEBUG="0", DJANGO_SSL_REDIRECT="1")
    processes.start_web(env, 8123, tmp_path / "web.log")
    assert started["env"]["DJANGO_SSL_REDIRECT"] == "0" and started["env"]["DJANGO_DEBUG"] == "0"
    assert "--host" in started["args"] and started["args"][started["args"].index("--host") + 1] == "127.0.0.1"
    assert env["DJANGO_SSL_REDIRECT"] == "1"  # the caller's environment is left as it was
