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
    "llamacpp": (
        set(),
        {"backend", "path", "name", "threads", "context", "max_rows", "flash_attn", "queue", "languages"},
    ),
    "transformers": (set(), {"backend", "path", "name", "device", "dtype", "max_rows", "queue", "languages"}),
    "openai": (
        {"url", "model"},
        {"backend", "url", "model", "name", "api_key_env", "timeout_s", "queue", "languages"},
    ),
}
SYNONYMS = {"local": "transformers"}  # the name the transformers backend had before llama.cpp joined it
DEFAULTS = {
    "llamacpp": {"path": "", "name": "", "threads": 0, "context": 2048, "max_rows": 32, "flash_attn": "auto"},
    "transformers": {"path": "", "name": "", "device": "auto", "dtype": "auto", "max_rows": 64},
    "openai": {},
}
LOCAL_BACKENDS = ("llamacpp", "transformers")
ADAPTER_BACKENDS = ("transformers",)  # serve LoRA adapters beside the base model, rows of several in one batch
# What the bundled model (SmolLM2-135M) writes well; another checkpoint declares its own with "languages".
BUNDLED_LANGUAGES = ["en"]


def backend_of(item: dict) -> str:
    """An entry's backend; without one, a GGUF file (or no path: the bundled GGUF) is llamacpp, a checkpoint
    folder transformers."""
    backend = item.get("backend")
    if backend:
        return SYNONYMS.get(backend, backend)
    path = str(item.get("path", ""))
    return "llamacpp" if not path or path.endswith(".gguf") else "transformers"


def entries() -> dict[str, dict]:
    """Every alias with its entry, defaults filled in."""
    out = {}
    for alias, item in settings.AIGC["MODELS"].items():
        backend = backend_of(item)
        out[alias] = {**DEFAULTS.get(backend, {}), **item, "backend": backend}
    return out


def languages(alias: str) -> list[str] | None:
    """The languages an alias writes well, as declared ("languages": ["en", "zh"]); the bundled model's when it
    serves that; None when nothing is known (no notice is given then)."""
    item = settings.AIGC["MODELS"].get(alias, {})
    if "languages" in item:
        return list(item["languages"])
    bundled = backend_of(item) == "llamacpp" and not item.get("path")
    return list(BUNDLED_LANGUAGES) if bundled else None


def aliases() -> list[str]:
    return list(settings.AIGC["MODELS"])


def entry(alias: str) -> dict:
    try:
        return entries()[alias]
    except KeyError:
        raise ImproperlyConfigured(
            f"unknown model alias {alias!r}; AIGC_MODELS defines {', '.join(aliases())}"
        ) from None


def queue_for(alias: str) -> str:
    """ "default" -> AIGC_QUEUE; any other alias X -> "<AIGC_QUEUE>.X", unless its entry names a queue. Read at
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
        backend = backend_of(item)
        if backend not in BACKENDS:
            raise ImproperlyConfigured(
                f"{where}: unknown backend {item.get('backend')!r}; use one of {', '.join(BACKENDS)}"
            )
        required, allowed = BACKENDS[backend]
        if missing := sorted(required - set(item)):
            raise ImproperlyConfigured(f"{where}: the {backend} backend needs {', '.join(missing)}")
        if unknown := sorted(set(item) - allowed):
            raise ImproperlyConfigured(f"{where}: unknown key(s) {', '.join(unknown)} for the {backend} backend")
        langs = item.get("languages", [])
        if not isinstance(langs, list) or not all(isinstance(x, str) and x for x in langs):
            raise ImproperlyConfigured(f'{where}: languages is a list of language codes, such as ["en", "zh"]')
        if "flash_attn" in item and item["flash_attn"] not in ("auto", "on", "off"):
            raise ImproperlyConfigured(f"{where}: flash_attn is auto, on or off")
        for key in ("threads", "context", "max_rows"):
            if key in item and (
                not isinstance(item[key], int)
                or isinstance(item[key], bool)
                or item[key] < (0 if key == "threads" else 1)
            ):
                raise ImproperlyConfigured(
                    f"{where}: {key} must be a whole number"
                    + (" (0: every core)" if key == "threads" else " of at least 1")
                )
