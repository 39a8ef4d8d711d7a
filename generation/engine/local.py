"""What every local backend's engine is: one loaded model serving many requests from many threads at once.

A backend supplies its runner (the forward step and KV state), how it applies the chat template and
tokenizes, which token ends the text, and an incremental detokenizer; the rest is shared: the scheduler
(scheduler.py) and the output processing (output.py). So sampling, stop strings, hold-back, deltas, deadlines
and cancels behave the same on every local backend, and a job replays exactly on the backend it ran on.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import Future

from .errors import EngineError, PromptTooLong
from .output import Delivery, OutputProcessor
from .scheduler import Scheduler
from .sequences import Active, Row
from .types import DeltaCallback, GenerationRequest, GenerationResult


class LocalEngine:
    backend = ""

    def __init__(
        self, *, runner, model_name: str, weights_sha256: str, context_length: int, max_rows: int = 64
    ) -> None:
        self.model_name = model_name
        self.weights_sha256 = weights_sha256
        self.context_length = context_length
        self._runner = runner
        output = OutputProcessor(self.is_end, self.new_detokenizer, Delivery())
        self._scheduler = Scheduler(runner, output, max_rows=max_rows)

    # --- what a backend provides ---------------------------------------------------------------------------

    def render_chat(self, messages: list[dict]) -> str:
        """The prompt text, the model's chat template applied, ready for the assistant's turn."""
        raise NotImplementedError

    def encode_chat(self, messages: list[dict]) -> list[int]:
        """The prompt's token ids, exactly as the model reads them."""
        raise NotImplementedError

    def is_end(self, token: int) -> bool:
        raise NotImplementedError

    def new_detokenizer(self):
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError

    # --- shared ----------------------------------------------------------------------------------------------

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.encode_chat(messages))

    def warmup(self) -> float:
        """Run a tiny generation so that the first real job does not pay for lazy initialisation."""
        started = time.monotonic()
        self.generate(
            GenerationRequest(messages=[{"role": "user", "content": "Hello"}], max_new_tokens=4, temperature=0)
        )
        return time.monotonic() - started

    def generate(self, request: GenerationRequest, on_delta: DeltaCallback | None = None) -> GenerationResult:
        """Generate for one request; safe to call from many threads at once, whose requests share the batch."""
        return self.submit(request, on_delta).result()

    def submit(self, request: GenerationRequest, on_delta: DeltaCallback | None = None) -> Future:
        if request.n < 1:
            raise EngineError("n must be at least 1")
        if request.max_new_tokens < 1:
            raise EngineError("max_new_tokens must be at least 1")
        prompt = self.encode_chat(request.messages)
        if len(prompt) + request.max_new_tokens > self.context_length:
            raise PromptTooLong(
                f"The prompt is {len(prompt)} tokens and {request.max_new_tokens} new tokens were asked for; "
                f"together they exceed the model's context of {self.context_length} tokens."
            )
        seed = request.seed if request.seed is not None else secrets.randbelow(2**31)
        active = Active(
            request=request,
            prompt=prompt,
            seed=seed,
            future=Future(),
            on_delta=on_delta,
            generator=self._runner.new_generator(seed),
            rows=[Row() for _ in range(request.n)],
            holdback=max((len(s) for s in request.stop), default=1) - 1,
            started=time.monotonic(),
        )
        return self._scheduler.submit(active)
