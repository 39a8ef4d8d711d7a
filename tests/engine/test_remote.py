"""The remote engine's failures read well as a job's error (the happy path runs against a real second process
in tests/integration/test_scale_out.py)."""

import socket

import pytest

from generation.engine import EngineError, GenerationRequest
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
