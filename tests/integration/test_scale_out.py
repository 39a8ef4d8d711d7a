"""Scale-out, with real processes: several model aliases on their own queues, each worker serving only the
aliases it hosts, an alias served by a remote OpenAI-compatible server (this studio's own /v1, in another
process), an alias no worker serves reported instead of waiting in silence, and /healthz and /metrics
reading it all back."""

import json
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from generation import services
from generation.infra import events, processes, redis_client, registry
from generation.models import JobStatus
from tests.integration.conftest import log_tail
from tests.integration.test_full_path import NEWS, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_aliases_on_their_own_queues_a_remote_engine_and_a_stranded_alias(cluster, user, settings):
    key = services.api_key_create(user, name="relay")[1]
    upstream_port = processes.free_port()
    models = {
        "default": {},  # the bundled model, through llama.cpp
        # The same weights under another alias, through transformers (converted from the GGUF on first load).
        "second": {"backend": "transformers", "name": "smollm2-second"},
        "relay": {
            "backend": "openai",
            "url": f"http://127.0.0.1:{upstream_port}/v1",
            "model": "default",
            "api_key_env": "RELAY_KEY",
            "name": "relayed-smollm2",
        },
        "idle": {},  # no worker hosts it
    }
    settings.AIGC = {**settings.AIGC, "MODELS": models}
    shared = {"AIGC_MODELS": json.dumps(models), "AIGC_METRICS_TOKEN": METRICS_TOKEN}
    web, url = cluster.web(port=upstream_port, **shared)  # the site, and the remote server the relay talks to
    first = cluster.worker("first", **shared)
    second = cluster.worker("second", queue=registry.queue_for("second"), **shared)
    relay = cluster.worker("relay", queue=registry.queue_for("relay"), RELAY_KEY=key, **shared)
    workers = {"default": first, "second": second, "relay": relay}
    before = metric_samples(url)  # the metrics' Redis counters are shared with whatever ran before

    jobs = {
        alias: services.job_create(
            user=user,
            kind="summary",
            inputs={"text": NEWS},
            model_alias=alias,
            params={"max_new_tokens": 24, "seed": 11},
        )
        for alias in ("default", "second", "relay", "idle")
    }
    done = {alias: wait_final(jobs[alias].pk, timeout=300) for alias in ("default", "second", "relay")}
    for alias, job in done.items():
        assert job.status == JobStatus.SUCCEEDED, job.error + log_tail(*workers.values())
        assert job.outputs.get().text.strip()
        # Run by the worker hosting its alias, and by no other.
        ran_on = [name for name, proc in workers.items() if f"job {job.pk}: succeeded" in proc.log_path.read_text()]
        assert ran_on == [alias], (alias, ran_on)
    assert (done["default"].model_name, done["second"].model_name, done["relay"].model_name) == (
        done["default"].model_name,
        "smollm2-second",
        "relayed-smollm2",
    )
    assert "smollm2" in done["default"].model_name.lower()
    assert [done[a].backend for a in ("default", "second", "relay")] == ["llamacpp", "transformers", "openai"]

    # Only the transformers worker loads torch: the llama.cpp worker runs the GGUF in llama.cpp, and the relay
    # worker forwards to the server.
    assert "libtorch" in Path(f"/proc/{second.pid}/maps").read_text()
    assert "libtorch" not in Path(f"/proc/{first.pid}/maps").read_text()
    assert "libtorch" not in Path(f"/proc/{relay.pid}/maps").read_text()

    # The relay passed the remote server's stream through: several deltas before the end, not one block.
    relayed = [e for _, e in redis_client.client().xrange(events.stream_key(jobs["relay"].pk))]
    deltas = [json.loads(e[b"data"]) for e in relayed if e[b"event"] == b"delta"]
    assert len(deltas) > 3 and "".join(d["text"] for d in deltas).strip()
    # The remote server ran it as a job of its own (through /v1, for the key's owner), with the same text.
    upstream = user.jobs.exclude(pk__in=[j.pk for j in jobs.values()]).get()
    assert upstream.template.slug == "chat" and upstream.status == JobStatus.SUCCEEDED
    assert upstream.outputs.get().text.strip() == done["relay"].outputs.get().text.strip()

    # Nobody serves "idle": the API says so on the job, /healthz marks the alias stranded.
    headers = {"Authorization": f"Bearer {key}"}
    idle = requests.get(f"{url}/api/v1/jobs/{jobs['idle'].pk}/", headers=headers, timeout=30).json()
    assert idle["status"] == "queued" and "No worker is serving the model 'idle'" in idle["notice"]
    assert requests.get(f"{url}/api/v1/jobs/{jobs['relay'].pk}/", headers=headers, timeout=30).json()["notice"] is None
    health = requests.get(f"{url}/healthz", headers=SCRAPER, timeout=30)  # the detailed report
    report = health.json()
    assert (
        health.status_code == 200 and report["status"] == "degraded" and report["database"] == report["redis"] == "ok"
    )
    assert {a: (m["live_workers"], m["stranded"]) for a, m in report["models"].items()} == {
        "default": (1, False),
        "second": (1, False),
        "relay": (1, False),
        "idle": (0, True),
    }
    assert report["models"]["idle"]["queued_jobs"] == 1 and report["models"]["idle"]["queue_depth"] == 1

    samples = metric_samples(url)
    assert samples[("aigc_jobs", (("alias", "idle"), ("status", "queued")))] == 1
    assert samples[("aigc_live_workers", (("alias", "second"), ("queue", registry.queue_for("second"))))] == 1
    for alias in ("default", "second", "relay"):
        # The relayed job counts on both sides: on "relay" here and on "default" for the server's own job.
        runs = 2 if alias == "default" else 1
        count = ("aigc_time_to_first_token_seconds_count", (("alias", alias),))
        assert samples[count] - before.get(count, 0) == runs
        tokens = ("aigc_generated_tokens_total", (("alias", alias),))
        assert samples[tokens] > before.get(tokens, 0)
    redis_client.client().delete(registry.queue_for("idle"))  # the message nobody will take

    # Cancelling a relayed job stops the remote server's work too: the relay closes its stream, and the server
    # cancels the job whose reader left.
    long = services.job_create(
        user=user, kind="writing", inputs={"topic": NEWS, "words": 300}, model_alias="relay", params={"seed": 5}
    )
    deadline = time.monotonic() + 120
    while redis_client.client().xlen(events.stream_key(long.pk)) < 3:  # text is flowing through the relay
        assert time.monotonic() < deadline, log_tail(relay, first)
        time.sleep(0.2)
    remote = user.jobs.filter(template__slug="chat").exclude(pk=upstream.pk).get()
    assert remote.status == JobStatus.RUNNING
    assert services.job_cancel(long, user=user)
    assert wait_final(long.pk, timeout=60).status == JobStatus.CANCELLED
    remote = wait_final(remote.pk, timeout=60)
    assert remote.status == JobStatus.CANCELLED and "its client left before the end" in web.log_path.read_text()


METRICS_TOKEN = "scrape-test"
SCRAPER = {"Authorization": f"Bearer {METRICS_TOKEN}"}  # with DEBUG off /metrics and the health details need it


def metric_samples(url: str) -> dict:
    """/metrics parsed with prometheus_client's own parser: {(sample name, sorted labels): value}."""
    text = requests.get(f"{url}/metrics", headers=SCRAPER, timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
