"""Generation over a loaded model: chat template, stop conditions, streaming, and requests from many threads
batched together (see batching.py).

A decoding loop of our own instead of `model.generate`: each request gets its own seeded generator (so a job
replays exactly, alone or batched), text deltas as tokens arrive, stop strings, deadlines and cancels between
steps, and requests join and leave the running batch at any step.
"""

from __future__ import annotations

import secrets
import time
from concurrent.futures import Future

import torch

from .batching import Active, Row, Scheduler
from .errors import EngineError, PromptTooLong
from .types import DeltaCallback, GenerationRequest, GenerationResult

__all__ = ["Engine", "GenerationRequest", "GenerationResult"]


class Engine:
    """One loaded model serving many requests: all rows of all requests in flight share each forward pass."""

    def __init__(self, model, tokenizer, model_name: str, weights_sha256: str, device, max_batch_rows: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.weights_sha256 = weights_sha256
        self.device = torch.device(device)
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        self._scheduler = Scheduler(self, max_rows=max_batch_rows)
        self.eos_ids = self._eos_ids()
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)

    def _eos_ids(self) -> set[int]:
        ids = set()
        for source in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(source, int):
                ids.add(source)
            elif source:
                ids.update(int(i) for i in source)
        if not ids:
            raise EngineError("the tokenizer defines no end-of-sequence token")
        return ids

    def encode_chat(self, messages: list[dict]) -> list[int]:
        """The prompt token ids with the model's chat template applied, ready for the assistant's turn."""
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def count_tokens(self, messages: list[dict]) -> int:
        return len(self.encode_chat(messages))

    def describe(self) -> dict:
        """What the web tier needs to count and preview prompts without loading the model (or torch)."""
        special = {k: v for k, v in self.tokenizer.special_tokens_map.items() if isinstance(v, str)}
        return {
            "name": self.model_name,
            "weights_sha256": self.weights_sha256,
            "context_length": self.context_length,
            "chat_template": self.tokenizer.chat_template,
            "tokenizer_json": self.tokenizer.backend_tokenizer.to_str(),
            "special_tokens": special,
        }

    def warmup(self) -> float:
        """Run a tiny generation so that the first real job does not pay for lazy initialisation."""
        started = time.monotonic()
        self.generate(GenerationRequest(messages=[{"role": "user", "content": "Hello"}], max_new_tokens=4, temperature=0))
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
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        active = Active(
            request=request,
            prompt=prompt,
            seed=seed,
            future=Future(),
            on_delta=on_delta,
            generator=generator,
            rows=[Row() for _ in range(request.n)],
            holdback=max((len(s) for s in request.stop), default=1) - 1,
            started=time.monotonic(),
        )
        return self._scheduler.submit(active)
