"""Generation over a loaded model: chat template, a KV-cached decoding loop, stop conditions, streaming.

A small loop of our own instead of `model.generate`: it gives each request its own seeded generator (so a
job replays exactly), streams text deltas as tokens arrive, honours stop strings, deadlines and cancels
between steps, and is the shape the cross-job batching scheduler grows from.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .errors import EngineError, GenerationTimeout, PromptTooLong
from .sampling import next_tokens

DeltaCallback = Callable[[int, str], None]


@dataclass
class GenerationRequest:
    messages: list[dict]
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    time_limit: float | None = None  # seconds for the whole request
    cancelled: Callable[[], bool] | None = None  # polled between steps


@dataclass
class GenerationResult:
    texts: list[str]
    finish_reasons: list[str]  # per candidate: "stop" (end of text or a stop string), "length", "cancelled"
    prompt_tokens: int
    completion_tokens: int  # over all candidates
    seed: int
    timings: dict


class _Candidate:
    """Decoding state of one output row: its tokens, the text emitted so far, and whether it is done."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.emitted = 0
        self.text = ""
        self.finish: str | None = None
        self.generated = 0  # tokens sampled for this row, the end-of-sequence token included


class Engine:
    """One loaded model. Requests are served one at a time under a lock; a request's n candidates share
    one batched forward pass per step."""

    def __init__(self, model, tokenizer, model_name: str, weights_sha256: str, device) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.model_name = model_name
        self.weights_sha256 = weights_sha256
        self.device = torch.device(device)
        self.context_length = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        self._lock = threading.Lock()
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
        with self._lock, torch.inference_mode():
            return self._decode(request, prompt, seed, on_delta)

    def _decode(self, request, prompt, seed, on_delta) -> GenerationResult:
        started = time.monotonic()
        deadline = started + request.time_limit if request.time_limit else None
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        n = request.n
        rows = [_Candidate() for _ in range(n)]
        holdback = max((len(s) for s in request.stop), default=1) - 1

        # Prefill once for the shared prompt, then widen the cache to the n candidates.
        input_ids = torch.tensor([prompt], device=self.device)
        out = self.model(input_ids=input_ids, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        logits = out.logits[:, -1, :]
        if n > 1:
            cache.batch_repeat_interleave(n)
            logits = logits.expand(n, -1)
        prefill_s = time.monotonic() - started

        steps = 0
        for steps in range(1, request.max_new_tokens + 1):
            tokens = next_tokens(logits, request.temperature, request.top_p, generator)
            for index, (row, token) in enumerate(zip(rows, tokens.tolist())):
                if row.finish:
                    continue
                row.generated += 1
                if token in self.eos_ids:
                    row.finish = "stop"
                else:
                    row.ids.append(token)
                    self._update_text(row, request.stop)
                if row.finish is None and steps == request.max_new_tokens:
                    row.finish = "length"
                self._emit(index, row, holdback, on_delta)
            if all(row.finish for row in rows):
                break
            if request.cancelled is not None and request.cancelled():
                for index, row in enumerate(rows):
                    if not row.finish:
                        row.finish = "cancelled"
                        self._emit(index, row, holdback, on_delta)
                break
            if deadline is not None and time.monotonic() > deadline:
                raise GenerationTimeout(f"The job ran past its time limit of {request.time_limit:g} s.")
            feed = torch.tensor([[t if not r.finish else self.pad_id] for t, r in zip(tokens.tolist(), rows)], device=self.device)
            out = self.model(input_ids=feed, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            logits = out.logits[:, -1, :]

        total_s = time.monotonic() - started
        completion = sum(row.generated for row in rows)
        return GenerationResult(
            texts=[row.text for row in rows],
            finish_reasons=[row.finish or "length" for row in rows],
            prompt_tokens=len(prompt),
            completion_tokens=completion,
            seed=seed,
            timings={"prefill_s": round(prefill_s, 4), "total_s": round(total_s, 4), "steps": steps},
        )

    def _update_text(self, row: _Candidate, stop: list[str]) -> None:
        text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for its next token
            return
        cuts = [i for s in stop if s and (i := text.find(s, max(0, len(row.text) - len(s) + 1))) != -1]
        if cuts:
            text = text[: min(cuts)]
            row.finish = "stop"
        row.text = text

    @staticmethod
    def _emit(index: int, row: _Candidate, holdback: int, on_delta: DeltaCallback | None) -> None:
        """Send the text not yet sent, holding back a tail that might still turn out to start a stop string."""
        if on_delta is None:
            return
        upto = len(row.text) if row.finish else max(row.emitted, len(row.text) - holdback)
        if upto > row.emitted:
            on_delta(index, row.text[row.emitted : upto])
            row.emitted = upto
