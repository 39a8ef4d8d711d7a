"""Continuous batching: many requests share each forward pass of one model.

One thread owns the model. Each step it admits waiting requests (prefilled one at a time, then merged into the
running batch), takes one decoding step for every active row at once, and lets finished, cancelled or timed-out
requests leave the batch. Rows of different lengths share one KV cache by left padding: each row keeps its own
position ids and an attention mask that hides its padding, so a row computes what it would compute alone.

Each request samples from its own seeded generator over its own rows, so its output does not depend on which
other requests happen to share the batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from .errors import GenerationTimeout
from .sampling import next_tokens

log = logging.getLogger("generation.engine")


@dataclass
class Row:
    """One output candidate being decoded."""

    ids: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    finish: str | None = None
    generated: int = 0


@dataclass
class Active:
    """A request in flight: its rows, its sampler, and where to report."""

    request: object
    prompt: list[int]
    seed: int
    future: Future
    on_delta: object
    generator: torch.Generator
    rows: list[Row]
    holdback: int
    started: float
    prefill_s: float = 0.0
    steps: int = 0


class Batch:
    """The running batch's tensors: KV cache, attention mask (1 = real token), next position per row, and the
    logits each row samples its next token from. Row r belongs to `owners[r]`."""

    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.owners: list[Active] = []

    @property
    def rows(self) -> int:
        return len(self.owners)

    def add(self, owners: list[Active], cache: DynamicCache, logits: torch.Tensor, mask: torch.Tensor, config) -> None:
        """Merge freshly prefilled rows (their cache, last logits and attention mask) into the batch."""
        length = mask.shape[1]
        positions = mask.sum(dim=1)  # the next position of each row is its count of real tokens
        if self.cache is None:
            self.cache, self.mask, self.positions, self.logits = cache, mask, positions, logits
        else:
            width = max(self.mask.shape[1], length)
            layers = []
            for old, new in zip(self.cache.layers, cache.layers):
                layers.append(
                    (
                        torch.cat([_left_pad(old.keys, width), _left_pad(new.keys, width)]),
                        torch.cat([_left_pad(old.values, width), _left_pad(new.values, width)]),
                    )
                )
            self.cache = DynamicCache(ddp_cache_data=layers, config=config)
            self.mask = torch.cat([F.pad(self.mask, (width - self.mask.shape[1], 0)), F.pad(mask, (width - length, 0))])
            self.positions = torch.cat([self.positions, positions])
            self.logits = torch.cat([self.logits, logits])
        self.owners.extend(owners)

    def keep(self, indices: list[int]) -> None:
        """Drop every row not in `indices` (finished requests leave the batch)."""
        if not indices:
            self.__init__()
            return
        if len(indices) == self.rows:
            return
        index = torch.tensor(indices, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions, self.logits = self.mask[index], self.positions[index], self.logits[index]
        self.owners = [self.owners[i] for i in indices]
        # Columns that are padding for every remaining row cost compute and hold nothing: cut them.
        real = self.mask.any(dim=0).nonzero()
        start = int(real[0]) if len(real) else 0
        if start:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
            self.mask = self.mask[:, start:]


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(t, (0, 0, width - t.shape[-2], 0)) if t.shape[-2] < width else t


class Scheduler:
    """Feeds requests from many threads (Celery's thread pool) into shared forward passes."""

    def __init__(self, engine, max_rows: int = 64) -> None:
        self.engine = engine
        self.max_rows = max_rows
        self._waiting: queue.Queue[Active] = queue.Queue()
        self._batch = Batch()
        self._thread = threading.Thread(target=self._loop, name="generation-scheduler", daemon=True)
        self._thread.start()

    def submit(self, active: Active) -> Future:
        self._waiting.put(active)
        return active.future

    # --- the model thread ----------------------------------------------------------------------------------

    def _loop(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            try:
                with torch.inference_mode():
                    self._admit(block=self._batch.rows == 0)
                    if self._batch.rows:
                        self._step()
            except Exception as exc:  # never let one bad step kill the thread: fail the requests in flight
                log.exception("batch step failed")
                for active in set(self._batch.owners):
                    if not active.future.done():
                        active.future.set_exception(exc)
                self._batch = Batch()

    def _admit(self, block: bool) -> None:
        """Take every waiting request that fits and prefill them together in one padded forward pass."""
        admitted, rows = [], self._batch.rows
        while rows < self.max_rows:
            try:
                active = self._waiting.get(block=block, timeout=None if block else 0)
            except queue.Empty:
                break
            block = False
            if not active.future.cancelled():
                admitted.append(active)
                rows += len(active.rows)
        if not admitted:
            return
        try:
            self._prefill(admitted)
        except Exception as exc:
            for active in admitted:
                active.future.set_exception(exc)

    def _prefill(self, admitted: list[Active]) -> None:
        engine = self.engine
        started = time.monotonic()
        width = max(len(a.prompt) for a in admitted)
        device = engine.device
        ids = torch.full((len(admitted), width), engine.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(admitted), width), dtype=torch.long, device=device)
        for i, active in enumerate(admitted):  # left padding: every prompt ends at the last column
            ids[i, width - len(active.prompt) :] = torch.tensor(active.prompt, device=device)
            mask[i, width - len(active.prompt) :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        out = engine.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        cache, logits = out.past_key_values, out.logits[:, -1, :].float()
        # Each request's n candidates start from copies of its prompt's row.
        expand = [i for i, active in enumerate(admitted) for _ in active.rows]
        if len(expand) != len(admitted):
            index = torch.tensor(expand, device=device)
            cache.batch_select_indices(index)
            logits, mask = logits[index], mask[index]
        owners = [active for active in admitted for _ in active.rows]
        elapsed = time.monotonic() - started
        for active in admitted:
            active.prefill_s = elapsed
        self._batch.add(owners, cache, logits, mask, engine.model.config)

    def _step(self) -> None:
        batch, engine = self._batch, self.engine
        tokens = torch.empty(batch.rows, dtype=torch.long, device=batch.logits.device)
        # Each request samples its own rows with its own generator.
        groups: dict[int, list[int]] = {}
        for i, owner in enumerate(batch.owners):
            groups.setdefault(id(owner), []).append(i)
        owners = {id(o): o for o in batch.owners}
        now = time.monotonic()
        for key, rows in groups.items():
            active = owners[key]
            r = active.request
            index = torch.tensor(rows, device=tokens.device)
            tokens[index] = next_tokens(batch.logits[index], r.temperature, r.top_p, active.generator)
        token_list = tokens.tolist()
        keep: list[int] = []
        for key, rows in groups.items():
            active = owners[key]
            active.steps += 1
            done = self._advance(active, [token_list[i] for i in rows], now)
            if not done:
                keep.extend(rows)
        keep.sort()
        batch.keep(keep)
        if not batch.rows:
            return
        feed = tokens[torch.tensor(keep, device=tokens.device)] if len(keep) != len(token_list) else tokens
        batch.mask = torch.cat([batch.mask, torch.ones(batch.rows, 1, dtype=batch.mask.dtype, device=batch.mask.device)], dim=1)
        out = engine.model(
            input_ids=feed[:, None],
            attention_mask=batch.mask,
            position_ids=batch.positions[:, None],
            past_key_values=batch.cache,
            use_cache=True,
        )
        batch.cache, batch.logits = out.past_key_values, out.logits[:, -1, :].float()
        batch.positions = batch.positions + 1

    def _advance(self, active: Active, tokens: list[int], now: float) -> bool:
        """Apply one step's tokens to a request's rows; returns True when the request is finished."""
        engine, r = self.engine, active.request
        for index, (row, token) in enumerate(zip(active.rows, tokens)):
            if row.finish:
                continue
            row.generated += 1
            if token in engine.eos_ids:
                row.finish = "stop"
            else:
                row.ids.append(token)
                engine._update_text(row, r.stop)
            if row.finish is None and active.steps >= r.max_new_tokens:
                row.finish = "length"
            engine._emit(index, row, active.holdback, active.on_delta)
        if all(row.finish for row in active.rows):
            engine._finish(active)
            return True
        if r.cancelled is not None and r.cancelled():
            for index, row in enumerate(active.rows):
                if not row.finish:
                    row.finish = "cancelled"
                    engine._emit(index, row, active.holdback, active.on_delta)
            engine._finish(active)
            return True
        if r.time_limit and now - active.started > r.time_limit:
            active.future.set_exception(GenerationTimeout(f"The job ran past its time limit of {r.time_limit:g} s."))
            return True
        return False
