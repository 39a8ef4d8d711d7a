"""Training data from the newsroom's approved edits: for a template (or one desk's work with it), the pairs of
the exact chat messages a job ran with and the approved final text, deduplicated, with a held-out split.

The split is decided by a hash of each pair's prompt, not by position or chance: a case stays on its side as
more approved work arrives, so an adapter is never measured on a prompt it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from ..models import Job, JobPurpose, JobStatus, ReviewState, TrainingRun

HELD_OUT_SHARE = 0.2  # of the distinct prompts; at least one once there are two
TRAIN, HELD_OUT = "train", "heldout"
SPLITS = (TRAIN, HELD_OUT)


@dataclass(frozen=True)
class Pair:
    job_id: str
    messages: list[dict]
    answer: str
    inputs: dict
    seed: int | None
    edited: bool
    key: str  # sha256 of the prompt (its messages): the dedup key and the split's hash
    split: str

    def as_chat(self) -> dict:
        """One line of the JSONL export: the chat format Hugging Face tools read (TRL's `messages`)."""
        return {"messages": [*self.messages, {"role": "assistant", "content": self.answer}]}


def _prompt_key(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _held_out(key: str) -> bool:
    return int(key[:8], 16) / 0xFFFFFFFF < HELD_OUT_SHARE


def training_pairs(template, *, desk=None, edited_only: bool = True) -> list[Pair]:
    """The template's approved jobs (of `desk`, when given) as pairs, oldest first. A prompt approved twice is
    one pair, with the newest approved text; `edited_only` keeps the jobs whose first output an editor changed
    (the lessons), else every approved one."""
    jobs = Job.objects.filter(
        template=template, purpose=JobPurpose.USER, status=JobStatus.SUCCEEDED, review_state=ReviewState.APPROVED
    )
    if desk is not None:
        jobs = jobs.filter(desk=desk)
    newest_first: dict[str, Pair] = {}
    for job in jobs.prefetch_related("outputs").order_by("-created_at", "-pk"):
        first = next(iter(job.outputs.all()), None)
        if first is None:
            continue
        answer = first.current_text.strip()
        edited = bool(first.edited_at) and first.final_text.strip() != first.text.strip()
        if not answer or (edited_only and not edited):
            continue
        key = _prompt_key(job.messages)
        if key in newest_first:
            continue
        seed = job.params.get("seed")
        newest_first[key] = Pair(
            job_id=str(job.pk),
            messages=job.messages,
            answer=answer,
            inputs=job.inputs,
            seed=seed if isinstance(seed, int) else None,
            edited=edited,
            key=key,
            split=HELD_OUT if _held_out(key) else TRAIN,
        )
    pairs = list(reversed(newest_first.values()))
    if len(pairs) >= 2 and not any(p.split == HELD_OUT for p in pairs):
        # Too few for the hash to hold one out: the pair whose hash is smallest is, the same one each time.
        lowest = min(pairs, key=lambda p: p.key)
        pairs = [replace(p, split=HELD_OUT) if p is lowest else p for p in pairs]
    return pairs


def training_jsonl(pairs: list[Pair], split: str | None = None) -> str:
    """The pairs (of one split, or all) as JSONL, one chat per line."""
    return "".join(
        json.dumps(p.as_chat(), ensure_ascii=False) + "\n" for p in pairs if split is None or p.split == split
    )


def training_runs_for_template(template):
    """A template's training runs, newest first, with what their pages and the API show beside them; the frozen
    pairs (the worker's to read, and large) are left in the database."""
    return (
        TrainingRun.objects.filter(template=template)
        .select_related("template", "desk", "base_version", "version", "dataset", "experiment", "created_by")
        .defer("data", "held_out_cases")
    )


def training_run(template, run_id) -> TrainingRun | None:
    """One run of this template; another template's is None (a 404), as an unknown id is."""
    return training_runs_for_template(template).filter(pk=run_id).first()
