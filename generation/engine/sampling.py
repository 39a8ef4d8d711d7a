"""Choosing the next token: greedy at temperature 0, otherwise temperature plus nucleus (top-p) sampling.

Two implementations of one rule: over torch tensors for the transformers backend (logits stay on its device),
over NumPy arrays for the llama.cpp backend (its logits are host memory, and its workers never import torch).
Each request has its own seeded generator, so a job replays exactly on the backend it ran on.
"""

from __future__ import annotations

import numpy as np


def next_tokens(logits, temperature: float, top_p: float, generator):
    """One token per row of `logits` (a rows x vocab torch tensor). A seeded generator makes sampling
    reproducible."""
    import torch

    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the first token is always kept).
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return order.gather(-1, choice).squeeze(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


NUCLEUS_START = 64  # candidates sorted first when looking for the nucleus; widened until it holds top_p


def next_tokens_np(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> list[int]:
    """The same rule over a rows x vocab NumPy array, with a NumPy generator.

    The nucleus is found without sorting the whole vocabulary: the largest NUCLEUS_START probabilities are
    partitioned out and sorted, and the set is widened only if their mass is below top_p. The kept tokens are
    exactly the ones a full sort keeps."""
    if temperature <= 0:
        return logits.argmax(axis=1).tolist()
    out = []
    for row in logits:
        z = (row - row.max()) / temperature
        probs = np.exp(z, dtype=np.float64)
        probs /= probs.sum()
        if top_p < 1.0:
            order = _nucleus_order(probs, top_p)
            kept = probs[order]
            kept = kept[np.cumsum(kept) - kept < top_p]
            cumulative = np.cumsum(kept)
            pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
            out.append(int(order[min(pick, len(kept) - 1)]))
        else:
            cumulative = np.cumsum(probs)
            pick = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
            out.append(min(pick, len(probs) - 1))
    return out


def _nucleus_order(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Token ids by falling probability, at least as many as the nucleus of mass top_p needs."""
    k = NUCLEUS_START
    while k < len(probs):
        top = np.argpartition(probs, -k)[-k:]
        top = top[np.argsort(-probs[top], kind="stable")]
        if probs[top].sum() >= top_p:
            return top
        k *= 4
    return np.argsort(-probs, kind="stable")
