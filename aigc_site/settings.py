"""Settings for the AIGC content studio.

Every value that differs between machines is read from the environment here, and only here
(django-environ). `.env.example` lists them; a `.env` file beside manage.py is read if present.
"""

import json
from datetime import timedelta
from pathlib import Path

import environ
import redis

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Values already in the environment win. DJANGO_ENV_FILE names another file, or none when empty (the settings
# tests use that, so that a developer's .env cannot change what production settings mean).
ENV_FILE = env.str("DJANGO_ENV_FILE", default=str(BASE_DIR / ".env"))
if ENV_FILE:
    environ.Env.read_env(ENV_FILE, overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# A real secret is required unless DEBUG is on: a production process must never start with a known key. Read
# verbatim: django-environ takes a value starting with "$" (as 2% of Django's generated keys do) for the name of
# another variable.
SECRET_KEY = env.ENVIRON.get("DJANGO_SECRET_KEY", "" if not DEBUG else "insecure-dev-only-key")
if not SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (or DJANGO_DEBUG=1 for local development).")
# The placeholder of .env.example is as public as no key at all (tests/test_settings.py keeps the two equal).
PLACEHOLDER_SECRET_KEY = "change-me-to-a-long-random-string"
if SECRET_KEY == PLACEHOLDER_SECRET_KEY:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is still the placeholder copied from .env.example: set a random one, e.g. "
        'python3 -c "import secrets; print(secrets.token_urlsafe(40))".'
    )
# Rotation: the new key signs; the old ones, comma-separated here, are still accepted until removed, so nobody
# is logged out at the switch. Read verbatim, as the key is.
SECRET_KEY_FALLBACKS = [k for k in env.ENVIRON.get("DJANGO_SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
if PLACEHOLDER_SECRET_KEY in SECRET_KEY_FALLBACKS:  # a fallback still verifies what anyone signs with it
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DJANGO_SECRET_KEY_FALLBACKS holds the placeholder of .env.example: remove it.")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",  # login lockout (below: AXES_*)
    "csp",  # Content-Security-Policy (below: CONTENT_SECURITY_POLICY)
    "generation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: turns a login refused for a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "aigc_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "generation.web.context.roles",
            ],
        },
    },
]

WSGI_APPLICATION = "aigc_site.wsgi.application"
ASGI_APPLICATION = "aigc_site.asgi.application"

# SQLite is the embedded default; PostgreSQL in production and CI through DATABASE_URL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=0))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and worker write the same file: wait for the lock instead of failing with "database is locked",
    # and name the test database so that a worker process can open the one the tests created.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# --- Mail ---------------------------------------------------------------------------------------------------
# EMAIL_URL (django-environ): smtp+tls://USER:PASSWORD@smtp.example.com:587, smtp+ssl://...:465, smtp://host:25,
# or consolemail:// (printed, for a machine of your own). Unset: no mail can go out, so the login page offers no
# password reset by mail (a form whose mail never leaves) and says to ask an administrator instead.
_MAIL = env.email_url("EMAIL_URL", default="dummymail://")
EMAIL_BACKEND = _MAIL["EMAIL_BACKEND"]
EMAIL_HOST, EMAIL_PORT = _MAIL.get("EMAIL_HOST") or "localhost", _MAIL.get("EMAIL_PORT") or 25
EMAIL_HOST_USER, EMAIL_HOST_PASSWORD = _MAIL.get("EMAIL_HOST_USER", ""), _MAIL.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS, EMAIL_USE_SSL = bool(_MAIL.get("EMAIL_USE_TLS")), bool(_MAIL.get("EMAIL_USE_SSL"))
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT_S", default=10)  # a mail server that hangs never holds a request for long
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="webmaster@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
PASSWORD_RESET_BY_MAIL = EMAIL_BACKEND != "django.core.mail.backends.dummy.EmailBackend"

# --- Login lockout (django-axes) ------------------------------------------------------------------------
# Every password login (the studio's /accounts/login/ and the admin's) goes through authenticate(), where the
# axes backend refuses a locked-out login before any password is checked. API keys are not passwords and never
# pass through it: a lockout does not stop a user's editorial tools.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AIGC_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AIGC_LOGIN_COOLOFF_MINUTES", default=15.0))
# What is locked: a username from one address (username+ip_address), not a username from anywhere. Locking a
# username wherever the failures come from would let anyone on the internet lock an editor out by typing wrong
# passwords for them; locking an address alone would lock a whole newsroom behind one NAT. Entries are
# comma-separated, "+" joins parameters (username, ip_address, user_agent): "username+ip_address,ip_address" also
# locks an address that tries many usernames, at the same limit.
AXES_LOCKOUT_PARAMETERS = [
    entry.split("+") if "+" in entry else entry
    for entry in env.list("AIGC_LOGIN_LOCKOUT_PARAMETERS", default=["username+ip_address"])
]
AXES_RESET_ON_SUCCESS = True  # a successful login forgets that username's earlier failures from that address
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # the lockout page's "try again after" stays true
AXES_CLIENT_IP_CALLABLE = "generation.web.accounts.client_ip"  # the proxy's X-Forwarded-For behind the TLS proxy
AXES_LOCKOUT_CALLABLE = "generation.web.accounts.lockout_response"  # a 429 page saying when to try again

# The interface in English and Simplified Chinese: chosen in the header (a cookie), else from the browser.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
# Pages work with no internet: our own CSS/JS, served by whitenoise from the app process.
WHITENOISE_USE_FINDERS = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- HTTPS and cookies ---------------------------------------------------------------------------------
# Production is HTTPS only, so `manage.py check --deploy` is silent with DEBUG off and nothing else set. Every
# process that serves plain HTTP with DEBUG off sets DJANGO_SSL_REDIRECT=0: the live servers of the tests and of
# `bench` (generation/infra/processes.py), and docker compose on a developer's machine.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SSL_REDIRECT", default=not DEBUG)
# Load balancers probe these over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
# Behind a proxy that terminates TLS the app sees plain HTTP; the proxy says what the client used. Only with a
# proxy that overwrites X-Forwarded-Proto, and an app port no client can reach directly: a client could claim
# https itself otherwise. Without this, a redirecting app behind such a proxy redirects forever.
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# HSTS: browsers that saw the header use only HTTPS for this host, for this long. Sent on HTTPS responses only.
# Preload lets the domain be submitted to the lists built into browsers (hstspreload.org): once listed, the
# domain and every subdomain are HTTPS-only in those browsers, and leaving the list takes months. Turn preload
# and subdomains off (check --deploy then warns) unless the whole domain is served over HTTPS for good.
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=not DEBUG)

SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # forms carry the token; no script reads the cookie
# Lax: sent when following a link to the studio, never with another site's POST or subrequest.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

# --- Content-Security-Policy (django-csp) ---------------------------------------------------------------
# Only our own files run and style the pages: no inline script, event handler, javascript: URL or eval, so an
# injected tag runs nothing even if it got past the sanitiser. data: images are the icons inside the CSS of the
# Swagger UI (/api/docs/). No page may be framed (clickjacking), and forms post only to the site itself.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "generation.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "generation.api.errors.exception_handler",
    # JSON bodies: no NaN, NUL or deep nesting, and no larger than DATA_UPLOAD_MAX_MEMORY_SIZE (api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "generation.api.parsers.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["generation.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "generation.api.schema.ApiSchema",  # drf-spectacular's, as strict as the validation
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "AIGC Studio API",
    "DESCRIPTION": "Jobs (create, poll, stream, cancel), templates and usage for editorial tools. Authenticate with "
    '`Authorization: Bearer <key>`; errors share one shape: {"error": {message, type, code, param, fields}}.',
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The Swagger UI's files come from the drf-spectacular-sidecar package, served by us: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No badge image from the online validator: the docs page loads nothing from outside (and CSP would refuse it).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Tools authenticate with an API key; the studio's session cookie also works on the API (the browser's own
    # requests) but is no credential to paste anywhere: the schema, and the docs' Authorize dialog, offer the key.
    "AUTHENTICATION_WHITELIST": ["generation.api.authentication.ApiKeyAuthentication"],
    # Jobs and evaluation runs both have a `status`, with different choices: each set keeps its own name.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "generation.models.JobStatus",
        "RunStatusEnum": "generation.models.RunStatus",
        "KindEnum": "generation.models.Kind",
    },
    # The event stream and /v1/* are plain async views drf-spectacular cannot see: added by this hook.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "generation.api.schema.add_plain_views",
    ],
}

# --- Redis and Celery -------------------------------------------------------------------------------------
# `make run` keeps its files here (AIGC_VAR_DIR; relative to the project folder): the embedded Redis, the admin
# password, its pid, and while it runs the embedded Redis's address (EMBEDDED_REDIS_FILE).
VAR_DIR = BASE_DIR / env.str("AIGC_VAR_DIR", default="var")
EMBEDDED_REDIS_FILE = VAR_DIR / "redis" / "embedded.json"


def _embedded_redis_url() -> str | None:
    """The URL of the Redis a running `make run` started, so that a process with no REDIS_URL of its own (a
    `manage.py evaluate` or `create_api_key` in a second terminal) reaches it, not an unrelated default; None
    when no run has one, or the server at that address is not the one it started (it ended, the port reused)."""
    try:
        found = json.loads(EMBEDDED_REDIS_FILE.read_text())
        url, pid = str(found["url"]), int(found["pid"])
        server = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            same = int(server.info("server")["process_id"]) == pid
        finally:
            server.close()
    except (OSError, ValueError, KeyError, TypeError, redis.RedisError):
        return None
    return url if same else None


REDIS_URL = env.str("REDIS_URL", default="") or _embedded_redis_url() or "redis://127.0.0.1:6379/0"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None  # results live in the database, not in Celery
CELERY_TASK_IGNORE_RESULT = True
# The queue of the model alias "default"; another alias X has the queue "<AIGC_QUEUE>.X" (generation/infra/registry.py).
CELERY_TASK_DEFAULT_QUEUE = env.str("AIGC_QUEUE", default="generation")
# Webhook deliveries are acknowledged when done, so a worker that dies mid-delivery leaves them to be redelivered.
# Generation jobs are acknowledged when they start: the reconciler re-sends a job whose worker died (tasks.py).
CELERY_TASK_ACKS_LATE = True
# Celery 6's default, set now: on a broker outage only acks_late tasks (webhook deliveries) are cancelled to be
# redelivered; generation jobs, acknowledged at start, run on through it.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redelivery of unacknowledged messages after a worker is lost; must exceed the longest job.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
# Hard and soft limits for prefork pools; the engine also enforces the soft limit itself as a deadline,
# because the threads pool the worker uses (see aigc_site/celery.py) does not deliver Celery's limits.
CELERY_TASK_SOFT_TIME_LIMIT = env.float("JOB_SOFT_TIME_LIMIT", default=600.0)
CELERY_TASK_TIME_LIMIT = env.int("JOB_TIME_LIMIT", default=660)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Sent by `celery beat` (Procfile: beat). The reconciler has a queue of its own ("maintenance", no model), so slow
# webhook receivers never delay recovery; the outbox sweeper sends due webhooks on the webhooks queue (a sweep
# not taken within one period expires: the next one does its work).
CELERY_BEAT_SCHEDULE = {
    "reconcile-jobs": {
        "task": "generation.reconcile_jobs",
        "schedule": env.float("AIGC_RECONCILE_EVERY_S", default=30.0),
        "options": {"queue": "maintenance"},
    },
    "sweep-webhooks": {
        "task": "generation.sweep_webhooks",
        "schedule": env.float("AIGC_OUTBOX_SWEEP_EVERY_S", default=5.0),
        "options": {"queue": "webhooks", "expires": env.float("AIGC_OUTBOX_SWEEP_EVERY_S", default=5.0)},
    },
}

# --- Generation -------------------------------------------------------------------------------------------
AIGC = {
    # The model registry: alias -> how it is served (generation/infra/registry.py checks the entries at start).
    # AIGC_MODELS is a JSON object, e.g. {"default": {"path": "/models/smollm2.gguf", "threads": 8},
    # "gpu": {"backend": "transformers", "path": "/models/llama-8b", "device": "cuda"},
    # "big": {"backend": "openai", "url": "http://vllm:8000/v1", "model": "llama-70b", "api_key_env": "VLLM_KEY"}}.
    # Backends: llamacpp (GGUF files; the default), transformers (Hugging Face folders), openai (a remote server).
    # Unset: one alias, "default", from the AIGC_* variables below, each only when set (an empty path is the
    # bundled SmolLM2 GGUF, served by llama.cpp); registry.DEFAULTS fills in the rest.
    # Template versions name an alias; each alias has its own Celery queue; a worker hosts the aliases whose
    # queues it consumes.
    "MODELS": env.json(
        "AIGC_MODELS",
        default={
            "default": {
                key: value
                for key, value in {
                    "backend": env.str("AIGC_BACKEND", default=None),  # llamacpp | transformers | openai
                    "path": env.str(
                        "AIGC_MODEL_PATH", default=""
                    ),  # a .gguf file (llamacpp) or a checkpoint folder (transformers)
                    "name": env.str("AIGC_MODEL_NAME", default=""),
                    "threads": env.int("AIGC_THREADS", default=None),  # llamacpp: 0 = every core of the process
                    "context": env.int(
                        "AIGC_CONTEXT", default=None
                    ),  # llamacpp: positions per candidate row (default 2048)
                    "max_rows": env.int(
                        "AIGC_MAX_ROWS", default=None
                    ),  # candidate rows decoded together (llamacpp 32, transformers 64)
                    "device": env.str("AIGC_DEVICE", default=None),  # transformers: auto | cpu | cuda | cuda:1 ...
                    "dtype": env.str(
                        "AIGC_DTYPE", default=None
                    ),  # transformers: auto (bf16 on CUDA and bf16 CPUs, else fp32) | ...
                }.items()
                if value is not None
            }
        },
    ),
    # Where weight hashes, the web tier's tokenizers and (transformers only) the dequantized bundled GGUF are cached.
    "MODEL_CACHE_DIR": env.str("AIGC_MODEL_CACHE_DIR", default=str(BASE_DIR / "var" / "models")),
    # The alias whose workers serve LoRA adapters trained on approved edits (adapters live under the model cache):
    # a transformers alias over the same base weights as the templates' own alias.
    "ADAPTER_ALIAS": env.str("AIGC_ADAPTER_ALIAS", default="tuned"),
    # The queue of training runs, which only training workers consume (Procfile: trainer; a GPU host in production).
    "TRAINING_QUEUE": env.str("AIGC_TRAINING_QUEUE", default="training"),
    # Bounds on every training run: the newest this many pairs at most, and the time it may take from its first
    # start (a run still training then fails, saying so). A run that ends leaves no checkpoint behind.
    "TRAINING_MAX_PAIRS": env.int("AIGC_TRAINING_MAX_PAIRS", default=5000),
    "TRAINING_MAX_S": env.float("AIGC_TRAINING_MAX_S", default=6 * 3600.0),
    # LoRA adapters one engine keeps attached at most; past it, the least recently used one no job is using is
    # detached (attached again, from disk, when a job needs it).
    "MAX_ATTACHED_ADAPTERS": env.int("AIGC_MAX_ATTACHED_ADAPTERS", default=8),
    "MAX_NEW_TOKENS": env.int("AIGC_MAX_NEW_TOKENS", default=1024),
    "MAX_CANDIDATES": env.int("AIGC_MAX_CANDIDATES", default=8),
    "MAX_ATTEMPTS": env.int("AIGC_MAX_ATTEMPTS", default=3),
    "WARMUP": env.bool("AIGC_WARMUP", default=True),
    # Liveness (see generation/services/reconcile.py): heartbeat period, how old a heartbeat may get before the
    # job counts as lost, after how long a queued job whose message is in neither its queue nor a worker's hands
    # (lost) is sent again, and after how long any queued job is (AIGC_RECONCILE_EVERY_S: beat).
    "HEARTBEAT_S": env.float("AIGC_HEARTBEAT_S", default=5.0),
    "STALE_AFTER_S": env.float("AIGC_STALE_AFTER_S", default=60.0),
    "LOST_MESSAGE_AFTER_S": env.float("AIGC_LOST_MESSAGE_AFTER_S", default=30.0),
    "RESEND_QUEUED_AFTER_S": env.float("AIGC_RESEND_QUEUED_AFTER_S", default=600.0),
    # API limits, checked before a job is queued; per key and per user overrides live in the admin.
    "REQUESTS_PER_MINUTE": env.int("AIGC_REQUESTS_PER_MINUTE", default=120),
    # All of one user's requests together, every key and the browser (a key an admin raised above it lifts it).
    "USER_REQUESTS_PER_MINUTE": env.int("AIGC_USER_REQUESTS_PER_MINUTE", default=300),
    "MAX_KEYS_PER_USER": env.int("AIGC_MAX_KEYS_PER_USER", default=20),
    # Templates: the longest system prompt and user message a version may hold (characters each), and what a desk
    # admin may pile up: versions of one of the desk's own templates (each save is one) and templates per desk.
    "MAX_PROMPT_CHARS": env.int("AIGC_MAX_PROMPT_CHARS", default=20_000),
    "MAX_VERSIONS_PER_TEMPLATE": env.int("AIGC_MAX_VERSIONS_PER_TEMPLATE", default=200),
    "MAX_TEMPLATES_PER_DESK": env.int("AIGC_MAX_TEMPLATES_PER_DESK", default=50),
    # Documenting code makes one model call per function: a job takes at most this many.
    "MAX_FUNCTIONS_PER_JOB": env.int("AIGC_MAX_FUNCTIONS_PER_JOB", default=50),
    "TOKENS_PER_DAY": env.int("AIGC_TOKENS_PER_DAY", default=500_000),
    # Evaluation (experiments): evaluation jobs queued or running at once over every run together (each run sends
    # at most two), and the daily pool of an organisation that has set none of its own (0: no default pool).
    "EVALUATION_IN_FLIGHT": env.int("AIGC_EVALUATION_IN_FLIGHT", default=8),
    "EVALUATION_TOKENS_PER_DAY": env.int("AIGC_EVALUATION_TOKENS_PER_DAY", default=2_000_000),
    "MAX_BATCH_JOBS": env.int("AIGC_MAX_BATCH_JOBS", default=100),
    # A batch upload (CSV or JSONL) larger than this is refused with a 413 before it is read.
    "MAX_BATCH_FILE_BYTES": env.int("AIGC_MAX_BATCH_FILE_BYTES", default=5 * 1024 * 1024),
    # Webhooks: attempts in all, the first retry's delay (doubling after each failure), per-read timeout, and the
    # wall-clock deadline of a whole attempt (connect, send, read: a receiver trickling bytes is cut there).
    "WEBHOOK_ATTEMPTS": env.int("AIGC_WEBHOOK_ATTEMPTS", default=5),
    "WEBHOOK_BACKOFF_S": env.float("AIGC_WEBHOOK_BACKOFF_S", default=10.0),
    "WEBHOOK_TIMEOUT_S": env.float("AIGC_WEBHOOK_TIMEOUT_S", default=10.0),
    "WEBHOOK_DEADLINE_S": env.float("AIGC_WEBHOOK_DEADLINE_S", default=30.0),
    # Callbacks go to public addresses over https only. Private targets (loopback, RFC 1918, link-local ...) for
    # tests and intranets; plain http (on by default with DEBUG) for local receivers.
    "WEBHOOK_ALLOW_PRIVATE": env.bool("AIGC_WEBHOOK_ALLOW_PRIVATE", default=False),
    "WEBHOOK_ALLOW_HTTP": env.bool("AIGC_WEBHOOK_ALLOW_HTTP", default=DEBUG),
    # Deliveries in flight per API key at most (0: no cap); the others wait their turn in the outbox.
    "WEBHOOK_MAX_IN_FLIGHT_PER_KEY": env.int("AIGC_WEBHOOK_MAX_IN_FLIGHT_PER_KEY", default=4),
    # /metrics and the detailed /healthz report: scrapers send it as a bearer token. Empty: with DEBUG off /metrics
    # is refused (403 naming this variable) and /healthz says only its status; with DEBUG on both are open.
    "METRICS_TOKEN": env.str("AIGC_METRICS_TOKEN", default=""),
    # Event streams (generation/api/streams.py): a comment every STREAM_KEEPALIVE_S on an idle stream, when each
    # stream also re-checks its key or session and the job's state; a stream ends after STREAM_MAX_S (the
    # client resumes with Last-Event-ID); a user may hold STREAMS_PER_USER open at once, over all web processes
    # (429 beyond; /v1 streamed completions count too).
    "STREAM_KEEPALIVE_S": env.float("AIGC_STREAM_KEEPALIVE_S", default=15.0),
    "STREAM_MAX_S": env.float("AIGC_STREAM_MAX_S", default=1800.0),
    "STREAMS_PER_USER": env.int("AIGC_STREAMS_PER_USER", default=20),
}

# --- The sandbox (generation/sandbox) --------------------------------------------------------------------------
# Code nobody reviewed (a model's code, a dataset case's test) runs only inside bubblewrap: no network, an empty
# environment, nothing of the project's folders, these limits, the whole tree killed at the deadline. Where no
# sandbox starts (bubblewrap missing, namespaces refused), code checks are not run and their findings say so.
AIGC_SANDBOX = {
    "BWRAP": env.str("AIGC_SANDBOX_BWRAP", default="bwrap"),  # the bubblewrap binary (a name on PATH, or a path)
    # The Python the code runs on: empty is the worker's own interpreter, or /usr/bin/python3 where the sandbox
    # user cannot read that one (a root worker hands the code to AIGC_SANDBOX_UID: root ignores process limits).
    "PYTHON": env.str("AIGC_SANDBOX_PYTHON", default=""),
    "UID": env.int("AIGC_SANDBOX_UID", default=65534),
    "DEADLINE_S": env.float("AIGC_SANDBOX_DEADLINE_S", default=10.0),
    "CPU_S": env.int("AIGC_SANDBOX_CPU_S", default=10),
    "MEMORY_MB": env.int("AIGC_SANDBOX_MEMORY_MB", default=512),
    "PROCESSES": env.int("AIGC_SANDBOX_PROCESSES", default=32),
    "FILE_MB": env.int("AIGC_SANDBOX_FILE_MB", default=16),
    "TMPFS_MB": env.int("AIGC_SANDBOX_TMPFS_MB", default=64),
}

# LOG_FORMAT=json: one JSON object per line for log stores; plain otherwise. Both carry the job id of the job a
# worker thread is running (generation/infra/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"job_id": {"()": "generation.infra.logs.JobIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s%(job_tag)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(job_id)s %(process)d %(threadName)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["job_id"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
