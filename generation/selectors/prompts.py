"""The web tier's prompt counter per model alias, built from what a worker published (ModelInfo) and kept in
memory until a worker publishes a new model."""

from __future__ import annotations

import threading

from ..models import (
    ModelInfo,
)

_counters: dict[str, tuple[object, object]] = {}


_counters_lock = threading.Lock()


def prompt_counter(alias: str):
    """A PromptCounter for the model served under `alias`, or None before any worker has published it.
    Kept in memory and rebuilt only when a worker publishes a new model."""
    from ..content.tokenizing import PromptCounter

    stamp = ModelInfo.objects.filter(alias=alias).values_list("updated_at", flat=True).first()
    if stamp is None:
        return None
    with _counters_lock:
        cached = _counters.get(alias)
        if cached and cached[0] == stamp:
            return cached[1]
        info = ModelInfo.objects.get(alias=alias)
        counter = PromptCounter(
            chat_template=info.chat_template,
            tokenizer_json=info.tokenizer_json,
            special_tokens=info.special_tokens,
            context_length=info.context_length,
        )
        _counters[alias] = (stamp, counter)
        return counter
