"""Continuous batching: many requests share each forward pass of one model.

One thread owns the model. Each step it admits waiting requests (prefilled together in one left-padded pass,
then merged into the running batch), takes one decoding step for every active row at once, and lets finished,
cancelled or timed-out requests leave the batch. Rows of different lengths share one KV cache by left padding:
each row keeps its own position ids and an attention mask that hides its padding, so a row computes what it
would compute alone.

Each request samples from its own seeded generator over its own rows, so its output does not depend on which
other requests happen to share the batch.

Out of memory (CUDA, or a CPU allocation failure) never fails the jobs in flight: the newest requests are taken
out of the batch and queued again with the tokens they have so far, the batch is capped at what fitted, and
they are prefilled again (prompt + their tokens) when rows free up. Only a request that does not fit alone fails.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache, DynamicLayer

from .errors import EngineError, GenerationTimeout
from .sampling import next_tokens
from .types import GenerationResult

log = logging.getLogger("generation.engine")

KV_HEADROOM = 128  # extra positions reserved when a layer's buffer grows


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or the CPU allocator's failure (a RuntimeError saying so)."""
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(exc, RuntimeError) and ("out of memory" in str(exc) or "can't allocate memory" in str(exc))


class GrowingLayer(DynamicLayer):
    """A KV cache layer whose tensors are views into a buffer with room to grow.

    transformers' DynamicLayer appends each step with torch.cat, copying the whole cache: at 32 rows that was a
    quarter of the step. Here a step writes its new column in place; the buffer is reallocated only when full."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.length = 0
        self._k = self._v = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, end = self.length, self.length + key_states.shape[-2]
        if self._k is None or end > self._k.shape[-2]:
            self._grow(key_states, end)
        self._k[:, :, start:end] = key_states
        self._v[:, :, start:end] = value_states
        self._set_length(end)
        return self.keys, self.values

    def _grow(self, like: torch.Tensor, needed: int) -> None:
        rows, heads, _, dim = like.shape
        capacity = needed + max(KV_HEADROOM, needed // 2)
        k, v = like.new_empty(rows, heads, capacity, dim), like.new_empty(rows, heads, capacity, dim)
        if self.length:
            k[:, :, : self.length], v[:, :, : self.length] = self.keys, self.values
        self._k, self._v = k, v

    def _set_length(self, length: int) -> None:
        self.length = length
        self.keys, self.values = self._k[:, :, :length], self._v[:, :, :length]

    def truncate(self, length: int) -> None:
        """Forget columns past `length` (a step that failed half-way through the layers)."""
        if self.is_initialized and self.length > length:
            self._set_length(length)

    def drop_front(self, columns: int) -> None:
        self._k, self._v = self._k[:, :, columns:], self._v[:, :, columns:]
        self._set_length(self.length - columns)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.is_initialized and self.length:
            self._k, self._v = self._k[indices], self._v[indices]
            self._set_length(self.length)

    def reset(self) -> None:
        super().reset()
        self.length, self._k, self._v = 0, None, None


def new_cache(config) -> Cache:
    return Cache(layers=[GrowingLayer() for _ in range(config.num_hidden_layers)])


@dataclass
class Row:
    """One output candidate being decoded."""

    ids: list[int] = field(default_factory=list)
    text: str = ""
    emitted: int = 0
    finish: str | None = None
    generated: int = 0


@dataclass(eq=False)  # compared and hashed by identity: each is one request
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
    first_token_at: float | None = None  # wall-clock time of the first token, to measure stream latency
    first_token_s: float | None = None
    steps: int = 0
    preempted: int = 0


class Batch:
    """The running batch's tensors: KV cache, attention mask (1 = real token), next position per row, and the
    logits each row samples its next token from. Row r belongs to `owners[r]`."""

    def __init__(self) -> None:
        self.cache: Cache | None = None
        self.mask: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.owners: list[Active] = []

    @property
    def rows(self) -> int:
        return len(self.owners)

    def add(self, owners: list[Active], cache: Cache, logits: torch.Tensor, mask: torch.Tensor, config) -> None:
        """Merge freshly prefilled rows (their cache, last logits and attention mask) into the batch."""
        length = mask.shape[1]
        positions = mask.sum(dim=1)  # the next position of each row is its count of real tokens
        if self.cache is None:
            self.cache, self.mask, self.positions, self.logits = cache, mask, positions, logits
        else:
            width = max(self.mask.shape[1], length)
            merged = new_cache(config)
            for layer, old, new in zip(merged.layers, self.cache.layers, cache.layers):
                layer.update(
                    torch.cat([_left_pad(old.keys, width), _left_pad(new.keys, width)]),
                    torch.cat([_left_pad(old.values, width), _left_pad(new.values, width)]),
                )
            self.cache = merged
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
                layer.drop_front(start)
            self.mask = self.mask[:, start:]


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(t, (0, 0, width - t.shape[-2], 0)) if t.shape[-2] < width else t


class Scheduler:
    """Feeds requests from many threads (Celery's thread pool) into shared forward passes."""

    def __init__(self, engine, max_rows: int = 64) -> None:
        self.engine = engine
        self.max_rows = max_rows
        self.row_limit = max_rows  # lowered after running out of memory, restored when the batch drains
        self._waiting: queue.Queue[Active] = queue.Queue()
        self._preempted: collections.deque[Active] = collections.deque()  # model thread only
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
                    if not self._batch.rows:
                        self.row_limit = self.max_rows
                    self._admit(block=self._batch.rows == 0 and not self._preempted)
                    if self._batch.rows:
                        self._step()
            except Exception as exc:  # never let one bad step kill the thread: fail the requests in flight
                log.exception("batch step failed")
                for active in set(self._batch.owners) | set(self._preempted):
                    _fail(active, exc)
                self._batch = Batch()
                self._preempted.clear()

    def _next_waiting(self, block: bool) -> Active | None:
        if self._preempted:
            return self._preempted.popleft()
        try:
            return self._waiting.get(block=block, timeout=None if block else 0)
        except queue.Empty:
            return None

    def _admit(self, block: bool) -> None:
        """Take every waiting request that fits and prefill them together in one padded forward pass."""
        admitted, rows = [], self._batch.rows
        while True:
            active = self._next_waiting(block)
            if active is None:
                break
            block = False
            if active.future.done():  # cancelled by its caller while waiting
                continue
            if rows and rows + len(active.rows) > self.row_limit:  # no room now: first in line for the next
                self._preempted.appendleft(active)
                break
            admitted.append(active)
            rows += len(active.rows)
        while admitted:
            try:
                self._prefill(admitted)
                return
            except Exception as exc:
                if not is_out_of_memory(exc):
                    for active in admitted:
                        _fail(active, exc)
                    return
                _release_memory(self.engine.device)
                if len(admitted) == 1 and not self._batch.rows:
                    _fail(admitted[0], EngineError("The request does not fit in the model device's memory, even alone."))
                    return
                # Prefill fewer at once; the rest wait for room.
                keep = len(admitted) // 2
                self._preempted.extendleft(reversed(admitted[keep:]))
                admitted = admitted[:keep]
                self.row_limit = max(1, self._batch.rows + sum(len(a.rows) for a in admitted))
                log.warning("out of memory while admitting requests: batch capped at %d rows", self.row_limit)

    def _prefill(self, admitted: list[Active]) -> None:
        """One padded forward pass over the admitted requests' prompts. A request resumed after preemption
        brings each row's prompt plus the tokens it had, and continues exactly where it stopped."""
        engine, device = self.engine, self.engine.device
        started = time.monotonic()
        sequences, copies = [], []
        for active in admitted:
            if any(row.ids or row.finish for row in active.rows):
                sequences.extend(active.prompt + row.ids for row in active.rows)
                copies.extend([1] * len(active.rows))
            else:  # a fresh request: its n candidates start from copies of one prefilled prompt
                sequences.append(active.prompt)
                copies.append(len(active.rows))
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), engine.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(sequences), width), dtype=torch.long, device=device)
        for i, seq in enumerate(sequences):  # left padding: every sequence ends at the last column
            ids[i, width - len(seq) :] = torch.tensor(seq, device=device)
            mask[i, width - len(seq) :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = new_cache(engine.model.config)
        out = engine.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1
        )
        logits = out.logits[:, -1, :].float()
        expand = [i for i, count in enumerate(copies) for _ in range(count)]
        if len(expand) != len(sequences):
            index = torch.tensor(expand, device=device)
            cache.batch_select_indices(index)
            logits, mask = logits[index], mask[index]
        owners = [active for active in admitted for _ in active.rows]
        elapsed = time.monotonic() - started
        for active in admitted:
            active.prefill_s += elapsed
        self._batch.add(owners, cache, logits, mask, engine.model.config)

    def _step(self) -> None:
        batch = self._batch
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
        while True:
            try:
                self._forward(feed)
                return
            except Exception as exc:
                if not is_out_of_memory(exc) or len(set(batch.owners)) < 2:
                    raise
                feed = self._preempt_newest(feed)

    def _forward(self, feed: torch.Tensor) -> None:
        batch = self._batch
        length = batch.mask.shape[1]
        mask = torch.cat([batch.mask, torch.ones(batch.rows, 1, dtype=batch.mask.dtype, device=batch.mask.device)], dim=1)
        try:
            out = self.engine.model(
                input_ids=feed[:, None],
                attention_mask=mask,
                position_ids=batch.positions[:, None],
                past_key_values=batch.cache,
                use_cache=True,
            )
        except Exception:
            for layer in batch.cache.layers:  # layers before the failure already took this step's column
                layer.truncate(length)
            raise
        batch.mask, batch.logits = mask, out.logits[:, -1, :].float()
        batch.positions = batch.positions + 1

    def _preempt_newest(self, feed: torch.Tensor) -> torch.Tensor:
        """Out of memory mid-step: the newest half of the requests leave the batch and wait, keeping their
        tokens (including the one just sampled); the rest retry the step. Returns the rest's input tokens."""
        batch = self._batch
        _release_memory(self.engine.device)
        order = list(dict.fromkeys(batch.owners))
        leaving = set(order[(len(order) + 1) // 2 :])
        keep = [i for i, owner in enumerate(batch.owners) if owner not in leaving]
        for active in reversed([a for a in order if a in leaving]):
            active.preempted += 1
            self._preempted.appendleft(active)
        batch.keep(keep)
        self.row_limit = max(1, batch.rows)
        log.warning("out of memory in a decoding step: %d requests wait, batch capped at %d rows", len(leaving), batch.rows)
        return feed[torch.tensor(keep, device=feed.device)]

    def _advance(self, active: Active, tokens: list[int], now: float) -> bool:
        """Apply one step's tokens to a request's rows; returns True when the request is finished."""
        r, eos = active.request, self.engine.eos_ids
        if active.first_token_at is None:
            active.first_token_at, active.first_token_s = time.time(), now - active.started
        for index, (row, token) in enumerate(zip(active.rows, tokens)):
            if row.finish:
                continue
            row.generated += 1
            if token in eos:
                row.finish = "stop"
            else:
                row.ids.append(token)
                self._update_text(row, r.stop)
            if row.finish is None and active.steps >= r.max_new_tokens:
                row.finish = "length"
            _emit(index, row, active.holdback, active.on_delta)
        if all(row.finish for row in active.rows):
            _finish(active)
            return True
        if r.cancelled is not None and r.cancelled():
            for index, row in enumerate(active.rows):
                if not row.finish:
                    row.finish = "cancelled"
                    _emit(index, row, active.holdback, active.on_delta)
            _finish(active)
            return True
        if r.time_limit and now - active.started > r.time_limit:
            _fail(active, GenerationTimeout.after(r.time_limit))
            return True
        return False

    def _update_text(self, row: Row, stop: list[str]) -> None:
        text = self.engine.tokenizer.decode(row.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for its next token
            return
        cuts = [i for s in stop if s and (i := text.find(s, max(0, len(row.text) - len(s) + 1))) != -1]
        if cuts:
            text = text[: min(cuts)]
            row.finish = "stop"
        row.text = text


def _emit(index: int, row: Row, holdback: int, on_delta) -> None:
    """Send the text not yet sent, holding back a tail that might still turn out to start a stop string."""
    if on_delta is None:
        return
    upto = len(row.text) if row.finish else max(row.emitted, len(row.text) - holdback)
    if upto > row.emitted:
        on_delta(index, row.text[row.emitted : upto], row.generated)
        row.emitted = upto


def _finish(active: Active) -> None:
    timings = {
        "prefill_s": round(active.prefill_s, 4),
        "first_token_s": round(active.first_token_s or 0.0, 4),
        "first_token_at": active.first_token_at,
        "total_s": round(time.monotonic() - active.started, 4),
        "steps": active.steps,
        "preempted": active.preempted,
    }
    active.future.set_result(
        GenerationResult(
            texts=[row.text for row in active.rows],
            finish_reasons=[row.finish or "length" for row in active.rows],
            prompt_tokens=len(active.prompt),
            completion_tokens=sum(row.generated for row in active.rows),
            seed=active.seed,
            timings=timings,
        )
    )


def _fail(active: Active, exc: BaseException) -> None:
    if not active.future.done():
        active.future.set_exception(exc)


def _release_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
