"""The model registry (settings.AIGC["MODELS"]): which aliases exist, how each is served, and its Celery queue.

One queue per alias lets each worker take only the jobs of the models it holds: a GPU host with a 70B model
and another with an 8B one share a broker without ever receiving each other's jobs. A worker hosts the aliases
whose queues it consumes (`--queues generation.big` hosts `big`), so the queue list is the one place a worker's
role is written down.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_ALIAS = "default"
BACKENDS = {
    # backend -> (keys it requires, keys it accepts)
    "local": (set(), {"backend", "path", "name", "device", "dtype", "queue"}),
    "openai": ({"url", "model"}, {"backend", "url", "model", "name", "api_key_env", "timeout_s", "queue"}),
}
LOCAL_DEFAULTS = {"path": "", "name": "", "device": "auto", "dtype": "auto"}


def entries() -> dict[str, dict]:
    """Every alias with its entry, defaults filled in."""
    out = {}
    for alias, entry in settings.AIGC["MODELS"].items():
        entry = {"backend": "local", **entry}
        if entry["backend"] == "local":
            entry = {**LOCAL_DEFAULTS, **entry}
        out[alias] = entry
    return out


def aliases() -> list[str]:
    return list(settings.AIGC["MODELS"])


def entry(alias: str) -> dict:
    try:
        return entries()[alias]
    except KeyError:
        raise ImproperlyConfigured(f"unknown model alias {alias!r}; AIGC_MODELS defines {', '.join(aliases())}") from None


def queue_for(alias: str) -> str:
    """"default" -> AIGC_QUEUE; any other alias X -> "<AIGC_QUEUE>.X", unless its entry names a queue. Read at
    call time, so that tests (and deployments) can move the whole set of queues by changing AIGC_QUEUE."""
    base = settings.CELERY_TASK_DEFAULT_QUEUE
    named = settings.AIGC["MODELS"].get(alias, {}).get("queue")
    return named or (base if alias == DEFAULT_ALIAS else f"{base}.{alias}")


def aliases_for_queues(queues) -> list[str]:
    """The aliases a worker consuming `queues` hosts."""
    queues = set(queues)
    return [alias for alias in aliases() if queue_for(alias) in queues]


def validate(models: dict) -> None:
    """Refuse a registry that would fail only when its first job arrives."""
    if not isinstance(models, dict) or not models:
        raise ImproperlyConfigured("AIGC_MODELS must be a JSON object of at least one alias")
    for alias, item in models.items():
        where = f"AIGC_MODELS[{alias!r}]"
        if not alias or not all(c.isalnum() or c in "-_" for c in alias):
            raise ImproperlyConfigured(f"{where}: an alias is letters, digits, '-' and '_' only")
        if not isinstance(item, dict):
            raise ImproperlyConfigured(f"{where} must be an object")
        backend = item.get("backend", "local")
        if backend not in BACKENDS:
            raise ImproperlyConfigured(f"{where}: unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")
        required, allowed = BACKENDS[backend]
        if missing := sorted(required - set(item)):
            raise ImproperlyConfigured(f"{where}: the {backend} backend needs {', '.join(missing)}")
        if unknown := sorted(set(item) - allowed):
            raise ImproperlyConfigured(f"{where}: unknown key(s) {', '.join(unknown)} for the {backend} backend")
