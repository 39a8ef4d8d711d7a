"""What a caller asks the engine for and what it gets back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

DeltaCallback = Callable[[int, str, int], None]  # candidate index, new text, tokens generated so far


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
    adapter: str | None = None  # a LoRA adapter attached to the engine by this name (lora.attach); None: the base


@dataclass
class GenerationResult:
    texts: list[str]
    finish_reasons: list[str]  # per candidate: "stop" (end of text or a stop string), "length", "cancelled"
    prompt_tokens: int
    completion_tokens: int  # over all candidates
    seed: int
    timings: dict
