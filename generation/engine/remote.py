"""An alias served by a remote OpenAI-compatible server instead of a model in this process: vLLM, llama.cpp's
server, or another deployment of this studio. The worker keeps the job's life (claim, heartbeat, cancel, stream,
save); the server does the generation. Requests go to its /chat/completions with stream=True and every delta is
passed on as it arrives, so the studio streams just as with a local model.

No torch and no Django here. The server applies its own chat template and checks its own context size; its
refusal becomes the job's error, word for word.
"""

from __future__ import annotations

import queue
import threading
import time

import openai

from .errors import EngineError, GenerationTimeout
from .types import DeltaCallback, GenerationRequest, GenerationResult

FINISH = {"stop": "stop", "length": "length"}


class RemoteEngine:
    backend = "openai"

    def __init__(self, url: str, model: str, api_key: str = "", name: str = "", timeout_s: float = 600.0) -> None:
        # No retries by the client: a retried streaming request may generate twice on the server (and, against
        # another deployment of this studio, create a second job). A failed request fails the job, with the reason.
        self.client = openai.OpenAI(base_url=url, api_key=api_key or "none", timeout=timeout_s, max_retries=0)
        self.url, self.model, self.timeout_s = url, model, timeout_s
        self.model_name = name or model
        self.weights_sha256 = ""  # the server's weights are its own business

    def describe(self) -> None:
        """Nothing for the web tier: the tokenizer and context size live on the server."""
        return None

    def warmup(self) -> float:
        """Check at worker start that the server answers, knows the key and serves the model."""
        started = time.monotonic()
        try:
            served = [m.id for m in self.client.models.list()]
        except openai.OpenAIError as exc:
            raise EngineError(f"The model server at {self.url} did not answer: {_reason(exc)}") from exc
        if self.model not in served:
            raise EngineError(
                f"The model server at {self.url} does not serve {self.model!r} (it serves {', '.join(served)})."
            )
        return time.monotonic() - started

    def generate(self, request: GenerationRequest, on_delta: DeltaCallback | None = None) -> GenerationResult:
        """Stream one request. The stream is read by a thread of its own while this one watches the job's cancel
        flag and deadline, so that both act at once even while the server sends nothing (a queued job upstream,
        or a server that only sends keep-alive comments)."""
        if request.adapter is not None:
            raise EngineError(
                f"The model server at {self.url} cannot serve the adapter {request.adapter!r}: this backend serves "
                "no LoRA adapters; run the request on a transformers worker, or without an adapter."
            )
        started = time.monotonic()
        limit = request.time_limit or self.timeout_s
        texts, reasons, counts = [""] * request.n, ["stop"] * request.n, [0] * request.n
        usage, first_token_s = None, None
        try:
            stream = self.client.chat.completions.create(
                model=self.model,
                messages=request.messages,
                max_tokens=request.max_new_tokens,
                temperature=request.temperature,
                top_p=request.top_p,
                n=request.n,
                seed=request.seed,
                stop=request.stop or None,
                stream=True,
                stream_options={"include_usage": True},
                timeout=limit,
            )
        except openai.APITimeoutError:
            raise GenerationTimeout.after(limit) from None
        except openai.OpenAIError as exc:
            raise _refused(exc) from exc
        chunks: queue.Queue = queue.Queue()
        threading.Thread(target=_read, args=(stream, chunks), name="remote-stream", daemon=True).start()
        try:
            while True:
                if request.cancelled is not None and request.cancelled():
                    reasons = ["cancelled"] * request.n  # closing the stream stops the server's work
                    break
                remaining = limit - (time.monotonic() - started)
                if remaining <= 0:
                    raise GenerationTimeout.after(limit)
                try:
                    chunk = chunks.get(timeout=min(POLL_S, remaining))
                except queue.Empty:
                    continue
                if chunk is _END:
                    break
                if isinstance(chunk, Exception):
                    raise _refused(chunk) from chunk
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    i, text = choice.index, choice.delta.content or ""
                    if text:
                        first_token_s = first_token_s if first_token_s is not None else time.monotonic() - started
                        texts[i] += text
                        counts[i] += 1  # a server sends about one token per chunk; usage, when sent, is exact
                        if on_delta:
                            on_delta(i, text, counts[i])
                    if choice.finish_reason:
                        reasons[i] = FINISH.get(choice.finish_reason, "stop")
        finally:
            stream.close()
        total_s = time.monotonic() - started
        return GenerationResult(
            texts=texts,
            finish_reasons=reasons,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else sum(counts),
            seed=request.seed or 0,
            timings={"first_token_s": round(first_token_s or 0.0, 4), "total_s": round(total_s, 4), "remote": self.url},
        )


_END = object()
POLL_S = 0.25  # how often a waiting request looks at its cancel flag and deadline


def _read(stream, chunks: queue.Queue) -> None:
    """Move the server's chunks onto the queue, then _END or the exception that ended the stream. After the
    consumer closed the stream, whatever this raises goes nowhere."""
    try:
        for chunk in stream:
            chunks.put(chunk)
        chunks.put(_END)
    except Exception as exc:  # noqa: BLE001 - the connection broke, or was closed under it: the consumer raises it
        chunks.put(exc)


def _refused(exc: Exception) -> EngineError:
    return EngineError(f"The model server refused or failed the request: {_reason(exc)}")


def _reason(exc: Exception) -> str:
    """The server's own message where it sent one (OpenAI's error shape), else the exception's."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body["error"] if isinstance(body.get("error"), dict) else body
        if error.get("message"):
            return f"{getattr(exc, 'status_code', '')} {error['message']}".strip()
    return str(exc) or type(exc).__name__
