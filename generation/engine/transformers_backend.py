"""The transformers backend: any Hugging Face LLaMA-family checkpoint through torch; the reference for tests,
for exact replay on GPU workers and for LoRA work.

This module is the forward step and the KV bookkeeping only (the runner); scheduling, sampling decisions and
output processing are shared with every local backend (scheduler.py, output.py). Rows of different lengths share
one KV cache by left padding: each row keeps its own position ids and an attention mask that hides its padding,
so a row computes what it would compute alone. Waiting requests are prefilled together in one left-padded pass,
then merged into the running batch.

Out of memory (CUDA, or a CPU allocation failure) is reported to the scheduler as `OutOfRoom` with the state as
before the failed part, so it can preempt requests instead of failing them.

LoRA adapters (lora.attach) are served beside the base model in the same batch: once any is attached, every
forward pass tells peft which adapter each row uses (`adapter_names`, "__base__" for the base), derived from the
rows' requests at that step, so it stays aligned as rows leave and join.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import torch
import torch.nn.functional as F
from transformers.cache_utils import Cache, DynamicLayer

from .chat import ChatTemplate
from .errors import EngineError
from .local import LocalEngine
from .lora import BASE, attached
from .output import OffsetDetokenizer
from .sampling import next_tokens
from .scheduler import OutOfRoom
from .sequences import Active
from .types import DeltaCallback, GenerationRequest

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


class Batch:
    """The running batch's tensors: KV cache, attention mask (1 = real token), next position per row, and the
    logits each row samples its next token from. Row r is candidate `slots[r][1]` of request `slots[r][0]`."""

    def __init__(self) -> None:
        self.cache: Cache | None = None
        self.mask: torch.Tensor | None = None
        self.positions: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self.slots: list[tuple[Active, int]] = []

    @property
    def rows(self) -> int:
        return len(self.slots)

    def add(
        self, slots: list[tuple[Active, int]], cache: Cache, logits: torch.Tensor, mask: torch.Tensor, config
    ) -> None:
        """Merge freshly prefilled rows (their cache, last logits and attention mask) into the batch."""
        length = mask.shape[1]
        positions = mask.sum(dim=1)  # the next position of each row is its count of real tokens
        if self.cache is None:
            self.cache, self.mask, self.positions, self.logits = cache, mask, positions, logits
        else:
            width = max(self.mask.shape[1], length)
            merged = new_cache(config)
            for layer, old, new in zip(merged.layers, self.cache.layers, cache.layers, strict=True):
                layer.update(
                    torch.cat([_left_pad(old.keys, width), _left_pad(new.keys, width)]),
                    torch.cat([_left_pad(old.values, width), _left_pad(new.values, width)]),
                )
            self.cache = merged
            self.mask = torch.cat([F.pad(self.mask, (width - self.mask.shape[1], 0)), F.pad(mask, (width - length, 0))])
            self.positions = torch.cat([self.positions, positions])
            self.logits = torch.cat([self.logits, logits])
        self.slots.extend(slots)

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
        self.slots = [self.slots[i] for i in indices]
        # Columns that are padding for every remaining row cost compute and hold nothing: cut them.
        real = self.mask.any(dim=0).nonzero()
        start = int(real[0]) if len(real) else 0
        if start:
            for layer in self.cache.layers:
                layer.drop_front(start)
            self.mask = self.mask[:, start:]


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    return F.pad(t, (0, 0, width - t.shape[-2], 0)) if t.shape[-2] < width else t


class TorchRunner:
    """The forward step of a transformers model over the running batch."""

    def __init__(self, model, pad_id: int, device: torch.device) -> None:
        self.model, self.pad_id, self.device = model, pad_id, device
        self._batch = Batch()
        self.adapters = False  # set once a LoRA adapter is attached: forwards then name each row's adapter
        # Held for each forward step; whoever changes the model's layers (attaching an adapter) or copies it
        # (training) holds it too, so the model thread never runs a half-changed model.
        self.lock = threading.Lock()

    @property
    def slots(self) -> list[tuple[Active, int]]:
        return self._batch.slots

    @contextlib.contextmanager
    def thread_context(self):
        torch.set_grad_enabled(False)
        with torch.inference_mode():
            yield

    def new_generator(self, seed: int) -> torch.Generator:
        generator = torch.Generator(device=self.device)
        generator.manual_seed(seed)
        return generator

    def has_room(self, active: Active, admitted: list[Active]) -> bool:
        return True  # memory is found out by trying: OutOfRoom preempts

    def sample(self, groups: dict[Active, list[int]]) -> list[int]:
        logits = self._batch.logits
        tokens = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
        for active, rows in groups.items():
            r = active.request
            index = torch.tensor(rows, device=logits.device)
            tokens[index] = next_tokens(logits[index], r.temperature, r.top_p, active.generator)
        return tokens.tolist()

    def keep(self, rows: list[int]) -> None:
        self._batch.keep(rows)

    def reset(self) -> None:
        self._batch = Batch()
        _release_memory(self.device)

    def step(self, feed: list[int], admitted: list[Active]) -> None:
        with self.lock:
            self._step(feed, admitted)

    def _adapter_kwargs(self, actives: list[Active]) -> dict:
        """peft's per-row adapter choice for a forward over these rows' requests; nothing without adapters."""
        if not self.adapters:
            return {}
        return {"adapter_names": [getattr(a.request, "adapter", None) or BASE for a in actives]}

    def _step(self, feed: list[int], admitted: list[Active]) -> None:
        if feed:
            try:
                self._decode(torch.tensor(feed, dtype=torch.long, device=self.device))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                _release_memory(self.device)
                raise OutOfRoom(admitting=False) from None
        if admitted:
            try:
                self._prefill(admitted)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                _release_memory(self.device)
                raise OutOfRoom(admitting=True) from None

    def _prefill(self, admitted: list[Active]) -> None:
        """One padded forward pass over the admitted requests' prompts. A request resumed after preemption
        brings each live row's prompt plus the tokens it had, and continues exactly where it stopped; a fresh
        request's candidates start from copies of its one prefilled prompt."""
        started = time.monotonic()
        sequences, copies, slots, owners = [], [], [], []
        for active in admitted:
            live = active.live_rows()
            if active.fresh:
                sequences.append(active.prompt)
                copies.append(len(live))
                owners.append(active)
            else:
                sequences.extend(active.prompt + active.rows[i].ids for i in live)
                copies.extend([1] * len(live))
                owners.extend([active] * len(live))
            slots.extend((active, i) for i in live)
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros((len(sequences), width), dtype=torch.long, device=self.device)
        for i, seq in enumerate(sequences):  # left padding: every sequence ends at the last column
            ids[i, width - len(seq) :] = torch.tensor(seq, device=self.device)
            mask[i, width - len(seq) :] = 1
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = new_cache(self.model.config)
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
            **self._adapter_kwargs(owners),
        )
        logits = out.logits[:, -1, :].float()
        expand = [i for i, count in enumerate(copies) for _ in range(count)]
        if len(expand) != len(sequences):
            index = torch.tensor(expand, device=self.device)
            cache.batch_select_indices(index)
            logits, mask = logits[index], mask[index]
        elapsed = time.monotonic() - started
        for active in admitted:
            active.prefill_s += elapsed
        self._batch.add(slots, cache, logits, mask, self.model.config)

    def _decode(self, feed: torch.Tensor) -> None:
        batch = self._batch
        length = batch.mask.shape[1]
        mask = torch.cat(
            [batch.mask, torch.ones(batch.rows, 1, dtype=batch.mask.dtype, device=batch.mask.device)], dim=1
        )
        try:
            out = self.model(
                input_ids=feed[:, None],
                attention_mask=mask,
                position_ids=batch.positions[:, None],
                past_key_values=batch.cache,
                use_cache=True,
                **self._adapter_kwargs([active for active, _ in batch.slots]),
            )
        except Exception:
            for layer in batch.cache.layers:  # layers before the failure already took this step's column
                layer.truncate(length)
            raise
        batch.mask, batch.logits = mask, out.logits[:, -1, :].float()
        batch.positions = batch.positions + 1


def _release_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


class TransformersEngine(LocalEngine):
    """A transformers model and its tokenizer serving many requests at once."""

    backend = "transformers"

    def __init__(
        self, model, tokenizer, model_name: str, weights_sha256: str, device, max_batch_rows: int = 64
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = torch.device(device)
        self.eos_ids = self._eos_ids()
        # The renderer the web tier uses too (describe()), so the parts users wrote are known when encoding.
        self.chat = ChatTemplate(tokenizer.chat_template or "", self._special_tokens())
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        super().__init__(
            runner=TorchRunner(model, pad_id, self.device),
            model_name=model_name,
            weights_sha256=weights_sha256,
            context_length=int(getattr(model.config, "max_position_embeddings", 0) or 2048),
            max_rows=max_batch_rows,
        )

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

    def is_end(self, token: int) -> bool:
        return token in self.eos_ids

    def submit(self, request: GenerationRequest, on_delta: DeltaCallback | None = None):
        """A request naming an adapter that is not attached fails here, before it reaches the batch."""
        if request.adapter is not None:
            names = attached(self)
            if request.adapter not in names:
                served = ", ".join(sorted(names)) or "none"
                raise EngineError(
                    f"The LoRA adapter {request.adapter!r} is not attached to {self.model_name} (attached: {served})."
                )
        return super().submit(request, on_delta)

    def new_detokenizer(self) -> OffsetDetokenizer:
        return OffsetDetokenizer(self.tokenizer)

    def render_chat(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def encode_chat(self, messages: list[dict]) -> list[int]:
        """Special-token strings count only where the chat template wrote them (see ChatTemplate.render_parts)."""
        return [
            t
            for text, trusted in self.chat.render_parts(messages)
            for t in self.tokenizer(text, add_special_tokens=False, split_special_tokens=not trusted)["input_ids"]
        ]

    def _special_tokens(self) -> dict:
        return {k: v for k, v in self.tokenizer.special_tokens_map.items() if isinstance(v, str)}

    def describe(self) -> dict:
        """What the web tier needs to count and preview prompts without loading the model (or torch)."""
        special = self._special_tokens()
        return {
            "name": self.model_name,
            "backend": self.backend,
            "weights_sha256": self.weights_sha256,
            "context_length": self.context_length,
            "chat_template": self.tokenizer.chat_template,
            "tokenizer_json": self.tokenizer.backend_tokenizer.to_str(),
            "special_tokens": special,
        }
