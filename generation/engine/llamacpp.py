"""The llama.cpp backend: GGUF checkpoints through llama-cpp-python, the engine a CPU user would otherwise pick.

One llama.cpp context serves every request of the process: each candidate row is its own sequence, and every
step is one `llama_decode` call holding the next token of every running row and the whole prompt of each
request admitted now (continuous batching, as llama.cpp's own server does it). The n candidates of a request
share their prompt: it is prefilled once and its KV copied to the other candidates' sequences.

Each sequence has a KV stream of its own (`context` positions), rather than one pool shared by all: measured
here, a step of 32 rows took about half the time it took in a unified cache, and a row's logits are then the
same whatever else is in the batch, so greedy output alone and batched is identical and a seeded job replays
exactly whoever it ran beside. The cost is memory reserved per row: 32 rows of 2048 positions hold about
1.6 GB for SmolLM2 (f16 K and V).

Only the forward step and the KV bookkeeping are here (the runner). Sampling is ours over llama.cpp's logits,
with a seeded NumPy generator per request, so a job replays exactly on this backend; scheduling and output
processing are shared with the transformers backend (scheduler.py, output.py). No torch is imported: a
llama.cpp worker is ready in seconds.

llama-cpp-python's low-level API (ctypes bindings of llama.h) is used rather than its `Llama` class, whose
generate loop runs one sequence at a time.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import time

import llama_cpp as lc
import numpy as np

from .chat import ChatTemplate
from .errors import EngineError
from .local import LocalEngine
from .output import ByteDetokenizer
from .sampling import next_tokens_np
from .sequences import Active
from .types import DeltaCallback, GenerationRequest

log = logging.getLogger("generation.engine")

_LEVELS = {3: logging.WARNING, 4: logging.ERROR}  # ggml_log_level: 3 warning, 4 error (debug, info dropped)


@lc.llama_log_callback
def _log_to_python(level, text, _user_data):
    if level in _LEVELS:
        log.log(_LEVELS[level], "llama.cpp: %s", text.decode("utf-8", "replace").rstrip())


_backend_ready = False


def _init_backend() -> None:
    global _backend_ready
    if not _backend_ready:
        lc.llama_log_set(_log_to_python, ctypes.c_void_p(0))
        lc.llama_backend_init()
        _backend_ready = True


# Flash attention is llama.cpp's default (auto: on where supported) and the faster at many rows (measured here:
# a 32-row step 161 ms with it, 208 ms without), but its CPU kernel sums a row's attention in an order that
# depends on the other sequences in the step, so greedy output batched can differ from alone after a near tie
# (`manage.py bench` reports the agreement). Off, a row computes exactly what it computes alone.
FLASH_ATTN = {"auto": -1, "off": 0, "on": 1}


# llama.cpp's extra weight buffers (AMX and CPU repacking of quantised weights) stay off: on a Sapphire Rapids
# host in a Firecracker VM, where the CPU reports AMX, the first decode of the bundled Q4_1 model through the AMX
# buffers crashes the process (a segmentation fault, also in llama-cpp-python's own `Llama`), and for Q4_1 those
# buffers are AMX only, so nothing is lost elsewhere. Set to True on hosts where AMX is known to work.
EXTRA_BUFFERS = False
_llama_defaults = lc.llama_model_default_params


def model_params():
    """llama.cpp's model parameters as this studio loads every model: on the CPU, without the extra buffers."""
    params = _llama_defaults()
    params.n_gpu_layers = 0  # this build serves CPUs; GPU fleets use the transformers or openai backends
    params.use_extra_bufts = EXTRA_BUFFERS
    return params


def default_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class LlamaModel:
    """A loaded GGUF model, its vocabulary and one context for `max_rows` sequences of `context` positions."""

    def __init__(self, path: str, *, threads: int, context: int, max_rows: int, flash_attn: str = "auto") -> None:
        _init_backend()
        self.model = lc.llama_model_load_from_file(path.encode(), model_params())
        if not self.model:
            raise EngineError(f"llama.cpp could not load {path}")
        self.vocab = lc.llama_model_get_vocab(self.model)
        self.n_vocab = lc.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = lc.llama_model_n_ctx_train(self.model)
        context = min(context, self.n_ctx_train or context)
        cparams = lc.llama_context_default_params()
        cparams.n_ctx = context * max_rows
        cparams.n_seq_max = max_rows
        cparams.kv_unified = False  # a KV stream per sequence (see the module's docstring)
        # One decode call holds every running row and the prompts admitted with them; llama.cpp splits it.
        self.n_batch = cparams.n_batch = 2 * context + max_rows
        cparams.n_ubatch = 512
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.flash_attn_type = FLASH_ATTN[flash_attn]
        cparams.no_perf = True
        self.ctx = lc.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise EngineError(f"llama.cpp could not create a context of {max_rows} x {context} positions for {path}")
        self.memory = lc.llama_get_memory(self.ctx)
        self.context = context
        self._pieces: dict[int, bytes] = {}

    def chat_template(self) -> str:
        raw = lc.llama_model_chat_template(self.model, None)
        return raw.decode("utf-8") if raw else ""

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of `text`, no BOS added (the template writes it where the model wants one). `special`: its
        special-token strings are parsed as control tokens (the chat template's text), or read as plain text
        (what users wrote)."""
        data = text.encode("utf-8")
        capacity = len(data) + 8
        tokens = (lc.llama_token * capacity)()
        n = lc.llama_tokenize(self.vocab, data, len(data), tokens, capacity, False, special)
        if n < 0:  # more tokens than bytes cannot happen for these vocabularies, but be exact
            capacity = -n
            tokens = (lc.llama_token * capacity)()
            n = lc.llama_tokenize(self.vocab, data, len(data), tokens, capacity, False, special)
        return list(tokens[:n])

    def piece(self, token: int, special: bool = False) -> bytes:
        """The bytes token `token` stands for in generated text (control tokens: none)."""
        if not special and token in self._pieces:
            return self._pieces[token]
        buf = ctypes.create_string_buffer(64)
        n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = lc.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, special)
        out = buf.raw[:n]
        if not special:
            self._pieces[token] = out
        return out

    def is_end(self, token: int) -> bool:
        return bool(lc.llama_vocab_is_eog(self.vocab, token))

    def special_tokens(self) -> dict:
        out = {}
        for name, fn in (("bos_token", lc.llama_vocab_bos), ("eos_token", lc.llama_vocab_eos)):
            token = fn(self.vocab)
            if token >= 0:
                out[name] = self.piece(token, special=True).decode("utf-8", "replace")
        return out


class LlamaRunner:
    """The forward step over llama.cpp sequences. Slot r of the batch is candidate `slots[r][1]` of request
    `slots[r][0]`, decoding in sequence `seqs[r]` at position `positions[r]`."""

    def __init__(self, llm: LlamaModel, max_rows: int) -> None:
        self.llm = llm
        self.max_rows = max_rows
        self.slots: list[tuple[Active, int]] = []
        self.seqs: list[int] = []
        self.positions: list[int] = []
        self._outputs: list[int] = []  # per slot, its row in the logits of the last decode
        self._logits: np.ndarray | None = None
        self._free = list(range(max_rows - 1, -1, -1))
        self._batch = lc.llama_batch_init(llm.n_batch, 0, 1)

    @contextlib.contextmanager
    def thread_context(self):
        yield

    def new_generator(self, seed: int) -> np.random.Generator:
        return np.random.default_rng(seed)

    def has_room(self, active: Active, admitted: list[Active]) -> bool:
        """A free sequence for each of its rows, and room for its prompt in this step's decode call. (Its
        sequences' length was checked when it was submitted: prompt plus new tokens fit `context`.)"""
        rows = sum(len(a.live_rows()) for a in admitted) + len(active.live_rows())
        tokens = len(self.slots) + sum(_prefill_tokens(a) for a in admitted) + _prefill_tokens(active)
        return rows <= len(self._free) and tokens <= self.llm.n_batch

    def sample(self, groups: dict[Active, list[int]]) -> list[int]:
        tokens = [0] * len(self.slots)
        for active, rows in groups.items():
            r = active.request
            picked = next_tokens_np(
                self._logits[[self._outputs[i] for i in rows]], r.temperature, r.top_p, active.generator
            )
            for i, token in zip(rows, picked, strict=True):
                tokens[i] = token
        return tokens

    def keep(self, rows: list[int]) -> None:
        kept = set(rows)
        for i, seq in enumerate(self.seqs):
            if i not in kept:
                self._release(seq)
        self.slots = [self.slots[i] for i in rows]
        self.seqs = [self.seqs[i] for i in rows]
        self.positions = [self.positions[i] for i in rows]
        self._outputs = [self._outputs[i] for i in rows]

    def _release(self, seq: int) -> None:
        lc.llama_memory_seq_rm(self.llm.memory, seq, -1, -1)
        self._free.append(seq)

    def reset(self) -> None:
        lc.llama_memory_clear(self.llm.memory, True)
        self.slots, self.seqs, self.positions, self._outputs = [], [], [], []
        self._free = list(range(self.max_rows - 1, -1, -1))
        self._logits = None

    def step(self, feed: list[int], admitted: list[Active]) -> None:
        """One llama_decode: the next token of every running row, and the prompts of the admitted requests.

        The batch lists its sequences in increasing id: with a KV stream per sequence, llama.cpp splits a batch
        whose ids are out of order into more, smaller pieces (measured: 32 rows in shuffled order decoded 30%
        slower than in order)."""
        started = time.monotonic()
        # (sequence, tokens, first position, who reads its logits); exactly one logits row per entry
        entries: list[tuple[int, list[int], int, tuple]] = [
            (seq, [token], pos, ("row", i))
            for i, (seq, pos, token) in enumerate(zip(self.seqs, self.positions, feed, strict=True))
        ]
        joining: list[tuple[Active, list[int], list[int], list[int]]] = []  # request, rows, sequences, next positions
        for j, active in enumerate(admitted):
            live = active.live_rows()
            seqs = [self._free.pop() for _ in live]
            if active.fresh:  # the prompt once, in the first candidate's sequence; copied to the others below
                entries.append((seqs[0], active.prompt, 0, ("fresh", j)))
                positions = [len(active.prompt)] * len(live)
            else:  # resumed: each live candidate brings its prompt and the tokens it had
                positions = []
                for k, (seq, index) in enumerate(zip(seqs, live, strict=True)):
                    tokens = active.prompt + active.rows[index].ids
                    entries.append((seq, tokens, 0, ("resumed", j, k)))
                    positions.append(len(tokens))
            joining.append((active, live, seqs, positions))
        entries.sort(key=lambda entry: entry[0])
        n, output_of = 0, {}
        for row, (seq, tokens, first, reader) in enumerate(entries):
            last = len(tokens) - 1
            for offset, token in enumerate(tokens):
                n = self._put(n, token, first + offset, seq, offset == last)
            output_of[reader] = row
        self._batch.n_tokens = n
        status = lc.llama_decode(self.llm.ctx, self._batch)
        if status != 0:
            for _, _, seqs, _ in joining:  # nothing of this call was kept: give the sequences back
                for seq in seqs:
                    self._release(seq)
            raise EngineError(f"llama.cpp failed a decoding step (status {status})")
        self.positions = [p + 1 for p in self.positions]
        outputs = [output_of[("row", i)] for i in range(len(self.slots))]
        for j, (active, live, seqs, positions) in enumerate(joining):
            if active.fresh:
                for seq in seqs[1:]:  # applied by llama.cpp before the next decode
                    lc.llama_memory_seq_cp(self.llm.memory, seqs[0], seq, -1, -1)
                outputs.extend([output_of[("fresh", j)]] * len(live))
            else:
                outputs.extend(output_of[("resumed", j, k)] for k in range(len(live)))
            self.slots.extend((active, i) for i in live)
            self.seqs.extend(seqs)
            self.positions.extend(positions)
            active.prefill_s += time.monotonic() - started
        self._outputs = outputs
        self._logits = np.ctypeslib.as_array(lc.llama_get_logits(self.llm.ctx), shape=(len(entries), self.llm.n_vocab))

    def _put(self, n: int, token: int, pos: int, seq: int, logits: bool) -> int:
        batch = self._batch
        batch.token[n] = token
        batch.pos[n] = pos
        batch.n_seq_id[n] = 1
        batch.seq_id[n][0] = seq
        batch.logits[n] = logits
        return n + 1


def _prefill_tokens(active: Active) -> int:
    if active.fresh:
        return len(active.prompt)
    return sum(len(active.prompt) + len(active.rows[i].ids) for i in active.live_rows())


class LlamaCppEngine(LocalEngine):
    """A GGUF model served by llama.cpp to many requests at once."""

    backend = "llamacpp"

    def __init__(
        self,
        path: str,
        *,
        model_name: str,
        weights_sha256: str,
        threads: int = 0,
        context: int = 2048,
        max_rows: int = 32,
        flash_attn: str = "auto",
        tokenizer_json=None,
    ) -> None:
        self.threads = threads or default_threads()
        self.llm = LlamaModel(path, threads=self.threads, context=context, max_rows=max_rows, flash_attn=flash_attn)
        self.path = path
        self._tokenizer_json = tokenizer_json  # a callable giving the Hugging Face tokenizer.json of this GGUF
        template = self.llm.chat_template()
        if not template:
            from .loading import LLAMA2_CHAT_TEMPLATE

            log.warning("%s has no chat template; using the Llama 2 [INST] format", model_name)
            template = LLAMA2_CHAT_TEMPLATE
        self.special_tokens = self.llm.special_tokens()
        self.chat = ChatTemplate(template, self.special_tokens)
        super().__init__(
            runner=LlamaRunner(self.llm, max_rows),
            model_name=model_name,
            weights_sha256=weights_sha256,
            context_length=self.llm.context,
            max_rows=max_rows,
        )

    device = "cpu"

    def submit(self, request: GenerationRequest, on_delta: DeltaCallback | None = None):
        if request.adapter is not None:
            raise EngineError(
                f"The llama.cpp engine cannot serve the adapter {request.adapter!r}: this backend serves no LoRA "
                "adapters; run the request on a transformers worker, or without an adapter."
            )
        return super().submit(request, on_delta)

    def render_chat(self, messages: list[dict]) -> str:
        return self.chat.render(messages)

    def encode_chat(self, messages: list[dict]) -> list[int]:
        return [
            t for text, trusted in self.chat.render_parts(messages) for t in self.llm.tokenize(text, special=trusted)
        ]

    def is_end(self, token: int) -> bool:
        return self.llm.is_end(token)

    def new_detokenizer(self) -> ByteDetokenizer:
        return ByteDetokenizer(self.llm.piece)

    def describe(self) -> dict:
        """For the web tier: the chat template as rendered here, and the same vocabulary as a Hugging Face
        tokenizer.json (converted from the GGUF once and cached), so its prompt counts are the engine's."""
        return {
            "name": self.model_name,
            "backend": self.backend,
            "weights_sha256": self.weights_sha256,
            "context_length": self.context_length,
            "chat_template": self.chat.source,
            "tokenizer_json": self._tokenizer_json() if self._tokenizer_json else None,
            "special_tokens": self.special_tokens,
        }
