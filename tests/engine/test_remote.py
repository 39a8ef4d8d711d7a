"""The remote engine's failures read well as a job's error, and a cancel or deadline acts while the server is
silent (the happy path runs against a real second process in tests/integration/test_scale_out.py)."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from generation.engine import EngineError, GenerationRequest, GenerationTimeout
from generation.engine.remote import RemoteEngine


@pytest.fixture
def closed_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there now


def test_an_unreachable_server_fails_the_request_with_its_address(closed_url):
    engine = RemoteEngine(closed_url, "default", timeout_s=5)
    with pytest.raises(EngineError, match="refused or failed"):
        engine.generate(GenerationRequest(messages=[{"role": "user", "content": "Hi"}], max_new_tokens=4))
    with pytest.raises(EngineError, match=f"The model server at {closed_url} did not answer"):
        engine.warmup()


def test_it_publishes_nothing_for_the_web_tier_and_imports_no_torch():
    import subprocess
    import sys

    code = "import sys; import generation.engine.remote; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
    assert RemoteEngine("http://127.0.0.1:1/v1", "m", name="served").describe() is None


@pytest.fixture
def silent_server():
    """An OpenAI-style endpoint that starts an event stream and then sends nothing, as a server whose request is
    still queued does. Yields its base URL and the list of requests whose connection the client closed."""
    release, closed = threading.Event(), []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.flush()
            while not release.wait(0.2):
                try:
                    self.wfile.write(b": keep-alive\n\n")  # fails once the client has gone
                    self.wfile.flush()
                except OSError:
                    closed.append(self.path)
                    return

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", closed
    release.set()
    server.shutdown()


def request(**kw):
    return GenerationRequest(messages=[{"role": "user", "content": "Hi"}], max_new_tokens=4, **kw)


def test_a_cancel_acts_while_the_server_sends_nothing_and_closes_the_stream(silent_server):
    url, closed = silent_server
    flag_at = time.monotonic() + 0.5
    started = time.monotonic()
    result = RemoteEngine(url, "m").generate(request(cancelled=lambda: time.monotonic() > flag_at))
    assert result.finish_reasons == ["cancelled"] and result.texts == [""]
    assert time.monotonic() - started < 10  # it did not wait for the server to speak
    deadline = time.monotonic() + 10
    while not closed and time.monotonic() < deadline:  # the server sees the connection go
        time.sleep(0.1)
    assert closed == ["/v1/chat/completions"]


def test_the_time_limit_holds_while_the_server_sends_nothing(silent_server):
    url, _ = silent_server
    with pytest.raises(GenerationTimeout, match="time limit of 1 s"):
        RemoteEngine(url, "m").generate(request(time_limit=1))
