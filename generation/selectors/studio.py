"""What the studio tells a user about where they stand: whether the small bundled demo model is serving."""

from __future__ import annotations

from ..infra import registry

DEFAULT_ALIAS = "default"


def demo_model_serving() -> bool:
    """True when the default alias (else the first) serves the bundled SmolLM2 (llama.cpp, no model path): the
    new-job page then says to expect short, rough drafts."""
    found = registry.entries()
    item = found.get(DEFAULT_ALIAS) or next(iter(found.values()), None)
    return bool(item) and item["backend"] == "llamacpp" and not item.get("path")
