"""Batches: a JSON list, a CSV or a JSONL upload; all queued or nothing written; aggregate status."""

import io
import json

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from generation.models import Job, JobBatch, JobStatus

pytestmark = pytest.mark.django_db

STORY = "The city council voted on Tuesday to build a new bridge over the Elm River."


def test_json_batch_is_queued_together_with_an_aggregate_status(api):
    body = {
        "jobs": [{"kind": "summary", "inputs": {"text": STORY}}, {"template": "seo-title", "inputs": {"text": STORY}}]
    }
    response = api.post("/api/v1/jobs/batch/", body, format="json")
    assert response.status_code == 202, response.content
    batch = response.json()
    assert batch["status"] == "queued" and batch["total"] == 2 and len(batch["jobs"]) == 2
    assert [j["template"] for j in batch["jobs"]] == ["summary", "seo-title"]
    Job.objects.filter(template__slug="summary").update(status=JobStatus.SUCCEEDED)
    assert api.get(f"/api/v1/jobs/batch/{batch['id']}/").json()["status"] == "running"
    Job.objects.update(status=JobStatus.SUCCEEDED)
    again = api.get(f"/api/v1/jobs/batch/{batch['id']}/").json()
    assert again["status"] == "succeeded" and again["counts"]["succeeded"] == 2


def test_one_bad_item_writes_nothing_and_names_the_item(api):
    body = {
        "jobs": [{"kind": "summary", "inputs": {"text": STORY}}, {"kind": "summary", "inputs": {}}, {"kind": "poem"}]
    }
    response = api.post("/api/v1/jobs/batch/", body, format="json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert "jobs.1.inputs.text" in fields and "jobs.2.kind" in fields
    assert Job.objects.count() == 0 and JobBatch.objects.count() == 0


def test_csv_upload(api):
    csv = f'template,text,params.seed\nsummary,"{STORY}",7\nheadline,"{STORY}",8\n'
    upload = io.BytesIO(csv.encode())
    upload.name = "stories.csv"
    response = api.post("/api/v1/jobs/batch/", {"file": upload}, format="multipart")
    assert response.status_code == 202, response.content
    jobs = Job.objects.order_by("created_at")
    assert [(j.template.slug, j.inputs["text"], j.params["seed"]) for j in jobs] == [
        ("summary", STORY, 7),
        ("headline", STORY, 8),
    ]


def test_jsonl_upload_and_its_errors(api):
    good = io.BytesIO(
        b'{"kind": "summary", "inputs": {"text": "One story."}}\n\n{"kind": "code", "inputs": {"instruction": "add"}}\n'
    )
    good.name = "jobs.jsonl"
    assert api.post("/api/v1/jobs/batch/", {"file": good}, format="multipart").status_code == 202
    bad = io.BytesIO(b'{"kind": "summary"}\nnot json\n')
    bad.name = "jobs.jsonl"
    response = api.post("/api/v1/jobs/batch/", {"file": bad}, format="multipart")
    assert response.status_code == 400 and "Line 2" in response.json()["error"]["message"]
    assert Job.objects.count() == 2


def test_limits_and_ownership(api, other_user, settings):
    settings.AIGC = {**settings.AIGC, "MAX_BATCH_JOBS": 2}
    body = {"jobs": [{"kind": "summary", "inputs": {"text": STORY}}] * 3}
    response = api.post("/api/v1/jobs/batch/", body, format="json")
    assert response.status_code == 400 and "At most 2 jobs" in response.json()["error"]["message"]
    assert api.post("/api/v1/jobs/batch/", {}, format="json").status_code == 400
    theirs = JobBatch.objects.create(owner=other_user)
    assert api.get(f"/api/v1/jobs/batch/{theirs.pk}/").status_code == 404


# --- Bad uploads: every malformed file is a 400 naming its row and column (or line), never a 500 ----------------

NASTY_FILES = [
    # (why, file name, content, what the message must say)
    ("superscript digit as version", "a.csv", "kind,text,version\nsummary,x,²\n".encode(), "Row 2, column version"),
    ("Arabic-Indic digits as version", "a.csv", "kind,text,version\nsummary,x,١٢\n".encode(), "Row 2, column version"),
    ("5000-digit version", "a.csv", b"kind,text,version\nsummary,x," + b"9" * 5000 + b"\n", "Row 2, column version"),
    ("a field past csv's limit", "a.csv", b"kind,text\nsummary," + b"a" * 200_000 + b"\n", "Row 2, column text"),
    ("NUL byte in a cell", "a.csv", b"kind,text\nsummary,fine\nsummary,a\x00b\n", "Row 3, column text"),
    ("NUL byte in the header", "a.csv", b"kind,te\x00xt\nsummary,a\n", "Row 1, column 2"),
    ("a row longer than the header", "a.csv", b"kind,text\nsummary,x,lost\n", "Row 2, column 3"),
    ("a row shorter than the header", "a.csv", b"kind,text,tone\nsummary,x,calm\nsummary,x\n", "Row 3, column tone"),
    ("a column named twice", "a.csv", b"kind,text,text\nsummary,a,b\n", "Row 1, column text"),
    ("an unnamed column", "a.csv", b"kind,,text\nsummary,a,b\n", "Row 1, column 2"),
    (
        "a 5000-digit seed",
        "a.csv",
        b"kind,text,params.seed\nsummary,x," + b"9" * 5000 + b"\n",
        "Row 2, column params.seed",
    ),
    (
        "deeply nested params",
        "a.csv",
        b"kind,text,params.stop\nsummary,x," + b"[" * 5000 + b"]" * 5000 + b"\n",
        "Row 2, column params.stop",
    ),
    ("an unknown input", "a.csv", b"kind,text,colour\nsummary,x,red\n", "Row 2, column colour"),
    ("a required input left empty", "a.csv", b"kind,text\nsummary,fine\nsummary,\n", "Row 3, column text"),
    ("an unknown kind", "a.csv", b"kind,text\npoem,x\n", "Row 2, column kind"),
    ("not UTF-8", "a.csv", b"kind,text\nsummary,caf\xe9\n", "not UTF-8 text (line 2"),
    ("only a header", "a.csv", b"kind,text\n", "empty"),
    ("no header at all", "a.csv", b"\n\n", "no header row"),
    ("a line that is not JSON", "a.jsonl", b'{"kind": "summary", "inputs": {"text": "x"}}\nnot json\n', "Line 2"),
    ("a JSON list line", "a.jsonl", b"[1, 2]\n", "Line 1 is not a JSON object"),
    (
        "NaN in JSONL",
        "a.jsonl",
        b'{"kind": "summary", "inputs": {"text": "x"}, "params": {"temperature": NaN}}\n',
        "Line 1",
    ),
    (
        "deep JSONL",
        "a.jsonl",
        b'{"kind": "summary", "inputs": {"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}\n",
        "Line 1",
    ),
    (
        "nested past the limit",
        "a.jsonl",
        b'{"kind": "summary", "inputs": {"text": ' + b"[" * 40 + b"]" * 40 + b"}}\n",
        "Line 1, field inputs.text",
    ),
    (
        "escaped NUL in JSONL",
        "a.jsonl",
        b'{"kind": "summary", "inputs": {"text": "x"}, "params": {"stop": ["\\u0000"]}}\n',
        "Line 1, field params.stop.0",
    ),
    (
        "a bad field in JSONL",
        "a.jsonl",
        b'{"kind": "summary", "inputs": {"text": "x"}}\n{"kind": "summary", "inputs": {}}\n',
        "Line 2, field inputs.text",
    ),
]


def _upload(api, name: str, content: bytes):
    upload = io.BytesIO(content)
    upload.name = name
    return api.post("/api/v1/jobs/batch/", {"file": upload}, format="multipart")


@pytest.mark.parametrize("why,name,content,expected", NASTY_FILES, ids=[case[0] for case in NASTY_FILES])
def test_a_nasty_file_is_a_400_naming_where_it_is(api, why, name, content, expected):
    response = _upload(api, name, content)
    assert response.status_code == 400, response.content[:500]
    error = response.json()["error"]
    assert error["param"] == "file" and any(expected in m for m in error["fields"]["file"]), error
    assert Job.objects.count() == 0 and JobBatch.objects.count() == 0


def test_what_spreadsheets_write_is_read(api):
    """Old Mac line endings, a byte-order mark, CRLF inside a quoted cell, a JSON string holding U+2028 (which
    str.splitlines() would have split) and ASCII digits are all fine."""
    assert _upload(api, "a.csv", b'\xef\xbb\xbfkind,text,version\rsummary,"two\r\nlines",1\r').status_code == 202
    assert _upload(api, "a.jsonl", '{"kind": "summary", "inputs": {"text": "a\u2028b"}}\n'.encode()).status_code == 202
    assert [j.inputs["text"] for j in Job.objects.order_by("created_at")] == ["two\r\nlines", "a\u2028b"]


def test_a_file_over_the_limit_is_refused_before_it_is_read(api, settings, monkeypatch):
    """413 naming `file`: from the declared Content-Length, without parsing the body; and from the upload's
    size when its framing kept the body within that."""
    from rest_framework.parsers import MultiPartParser

    settings.AIGC = {**settings.AIGC, "MAX_BATCH_FILE_BYTES": 2048}
    parsed = []
    original = MultiPartParser.parse
    monkeypatch.setattr(MultiPartParser, "parse", lambda self, *a, **k: parsed.append(1) or original(self, *a, **k))
    big = b"kind,text\n" + b"summary,x\n" * 10_000  # 100 kB
    response = _upload(api, "a.csv", big)
    assert response.status_code == 413 and not parsed
    error = response.json()["error"]
    assert error["param"] == "file" and "2,048 bytes" in error["fields"]["file"][0]
    response = _upload(api, "a.csv", b"kind,text\n" + b"summary,x\n" * 250)  # 2.5 kB: within the framing slack
    assert response.status_code == 413 and parsed and response.json()["error"]["param"] == "file"
    assert _upload(api, "a.csv", b"kind,text\nsummary,x\n").status_code == 202


def test_json_bodies_that_python_would_choke_on_are_400s(api):
    """Deep nesting (a RecursionError in json), NaN (which PostgreSQL cannot store) and NUL."""
    deep = b'{"kind": "summary", "inputs": {"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}"
    for body in (
        deep,
        b'{"kind": "summary", "inputs": {"text": "x"}, "params": {"temperature": NaN}}',
        b'{"kind": "summary", "inputs": {"text": "x"}, "params": {"stop": ["a\\u0000"]}}',
    ):
        for path in ("/api/v1/jobs/", "/api/v1/jobs/batch/"):
            data = body if path == "/api/v1/jobs/" else b'{"jobs": [' + body + b"]}"
            response = api.generic("POST", path, data, content_type="application/json")
            assert response.status_code == 400, (path, response.content[:300])
            assert response.json()["error"]["type"] == "invalid_request_error"
    response = api.generic(
        "POST",
        "/api/v1/jobs/",
        b'{"kind": "summary", "inputs": {"text": "x"}, "params": {"stop": ["a\\u0000"]}}',
        content_type="application/json",
    )
    assert response.json()["error"]["param"] == "params.stop.0"
    assert Job.objects.count() == 0


def test_the_asgi_server_refuses_a_large_body_before_django_reads_it(settings):
    """Django's ASGI handler reads a whole body before any view runs; the guard in front of it answers 413 on a
    declared Content-Length unread, and cuts a chunked body at the limit."""
    import asyncio

    from aigc_site.asgi import application
    from generation.api.bodylimit import BodyLimit, largest_body

    assert isinstance(application, BodyLimit)
    settings.AIGC = {**settings.AIGC, "MAX_BATCH_FILE_BYTES": 100_000}
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    limit = largest_body()

    async def inner(scope, receive, send):  # what Django does first: read the whole body
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"read"})

    def call(headers, chunks):
        sent, pulled = [], []

        async def receive():
            pulled.append(1)
            chunk = chunks.pop(0) if chunks else b""
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/api/v1/jobs/batch/", "headers": headers}
        asyncio.run(BodyLimit(inner)(scope, receive, send))
        return sent, len(pulled)

    sent, pulled = call([(b"content-length", str(limit + 1).encode())], [b"x"] * 10)
    assert sent[0]["status"] == 413 and pulled == 0
    assert json.loads(sent[1]["body"])["error"]["param"] == "file"
    sent, pulled = call([], [b"x" * 50_000] * 10)  # chunked, 500 kB
    assert [m["status"] for m in sent if "status" in m] == [413] and pulled == 3
    sent, _ = call([(b"content-length", b"10")], [b"x" * 10])
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"read"


_CSV_BITS = st.sampled_from(
    [
        "kind",
        "text",
        "version",
        "params.seed",
        "params.stop",
        "summary",
        ",",
        '"',
        "\r",
        "\n",
        "\r\n",
        "\x00",
        "²",
        "١٢",
        "7",
        "[",
        "]",
        "{",
        "}",
        "NaN",
        " ",
        "\ufeff",
        "\u2028",
        "é",
    ]
)


@pytest.mark.django_db(transaction=False)
@given(
    content=st.one_of(
        st.binary(max_size=300), st.lists(_CSV_BITS, max_size=60).map(lambda bits: "".join(bits).encode())
    ),
    name=st.sampled_from(["a.csv", "a.jsonl", "a.txt"]),
)
@hypothesis_settings(max_examples=300, deadline=None, database=None, derandomize=True)
def test_fuzzed_files_are_parsed_or_refused_by_name(content, name):
    """Whatever the bytes, the parser and the job validators answer with a ValidationError naming `file`
    (or items to be named by row), never another exception."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.exceptions import ValidationError

    from generation.api import batches
    from generation.api.serializers import JobCreateSerializer

    try:
        parsed = batches._from_file(SimpleUploadedFile(name, content))
    except ValidationError as exc:
        assert set(exc.detail) == {"file"}
        return
    for i, item in enumerate(parsed.items):
        serializer = JobCreateSerializer(data=item)
        if not serializer.is_valid():
            for field, messages in serializer.errors.items():
                key, named = parsed.name(i, field, [str(m) for m in messages])
                assert key == "file" and named[0].startswith(("Row ", "Line "))
