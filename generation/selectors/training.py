"""Training data from the newsroom's approved edits: for a template, the pairs of the exact chat messages a job ran
with and the approved final text (of the chosen candidate), deduplicated, with a held-out split, and whose work they are.

The split is decided by a hash of each pair's prompt, not by position or chance: a case stays on its side as
more approved work arrives, so an adapter is never measured on a prompt it was trained on.

Sources are per desk: a desk's own template reads its desk's work, a shared one the desk a curator names, or,
named none, the only desk with approved work; mixing several desks' work (into a dataset or an adapter that
then serves every desk) is a curator's explicit choice (`all_desks`), and what is mixed shows each desk's share.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from django.core.exceptions import ValidationError

from ..models import Desk, Job, JobPurpose, JobStatus, ReviewState, TrainingRun

HELD_OUT_SHARE = 0.2  # of the distinct prompts; at least one once there are two
TRAIN, HELD_OUT = "train", "heldout"
SPLITS = (TRAIN, HELD_OUT)
CHUNK = 200  # jobs read from the database at a time: the texts of every approved job are never held at once


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
    desk: str = ""  # the slug of the desk whose work it is

    def as_chat(self) -> dict:
        """One line of the JSONL export: the chat format Hugging Face tools read (TRL's `messages`)."""
        return {"messages": [*self.messages, {"role": "assistant", "content": self.answer}]}


@dataclass(frozen=True)
class PairRef:
    """A pair without its texts (its job, hash, split and desk): what a streamed export holds for every pair."""

    job_id: str
    key: str
    split: str
    desk: str


def _prompt_key(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _held_out(key: str) -> bool:
    return int(key[:8], 16) / 0xFFFFFFFF < HELD_OUT_SHARE


# --- whose work ------------------------------------------------------------------------------------------------


def source_desk(template, *, desk: Desk | None = None, all_desks: bool = False) -> Desk | None:
    """The desk whose approved work to read: a desk's own template, its desk (another desk named is refused);
    a shared template, the desk named. None: every desk is read, and `source_settle` decides from the shares."""
    if desk is not None and all_desks:
        raise ValidationError({"all_desks": ["Name one desk or choose every desk's work, not both."]})
    if template.desk_id is not None:
        if desk is not None and desk.pk != template.desk_id:
            raise ValidationError(
                {"desk": [f"{template.slug!r} is the {template.desk.slug} desk's own template: only its work is read."]}
            )
        return template.desk
    return desk


def source_settle(template, shares: dict[str, int], *, desk: Desk | None, all_desks: bool) -> Desk | None:
    """The desk a source turned out to be (the one read, or the only one with approved work; None: every desk,
    as the curator chose). Work of several desks that no curator chose to mix is refused, naming each share."""
    if desk is not None or all_desks:
        return desk
    if len(shares) > 1:
        listed = ", ".join(f"{slug}: {n}" for slug, n in shares.items())
        raise ValidationError(
            {
                "desk": [
                    f"{template.slug!r} has approved work from {len(shares)} desks ({listed}): name one desk, or "
                    "choose all desks to mix their work."
                ]
            }
        )
    return Desk.objects.filter(slug=next(iter(shares))).first() if shares else None


def desk_shares(pairs: Iterable) -> dict[str, int]:
    """How many of these pairs (or cases) each desk's work gave, by desk slug."""
    return dict(sorted(Counter(p.desk for p in pairs).items()))


# --- the pairs -------------------------------------------------------------------------------------------------


def _approved(template, desk: Desk | None):
    jobs = Job.objects.filter(
        template=template, purpose=JobPurpose.USER, status=JobStatus.SUCCEEDED, review_state=ReviewState.APPROVED
    )
    return jobs.filter(desk=desk) if desk is not None else jobs


def _answer(job: Job, edited_only: bool) -> tuple[str, bool] | None:
    """The approved text (the final text of the job's chosen candidate, the first chosen where several were)
    and whether an editor changed it; None: not a pair (nothing chosen, or nothing edited when only edits
    count). Never an unchosen candidate: a fabricated first candidate is not what the newsroom approved."""
    chosen = next((o for o in job.outputs.all() if o.chosen), None)
    if chosen is None:
        return None
    answer = chosen.current_text.strip()
    edited = bool(chosen.edited_at) and chosen.final_text.strip() != chosen.text.strip()
    if not answer or (edited_only and not edited):
        return None
    return answer, edited


def _newest_first(template, desk: Desk | None, edited_only: bool, limit: int | None) -> Iterator[tuple]:
    """(job, answer, edited, key) of each distinct prompt, newest approval first, read CHUNK jobs at a time;
    at most `limit` of them."""
    jobs = _approved(template, desk).select_related("desk").prefetch_related("outputs").order_by("-created_at", "-pk")
    seen: set[str] = set()
    for job in jobs.iterator(chunk_size=CHUNK):
        if limit is not None and len(seen) >= limit:
            return
        found = _answer(job, edited_only)
        if found is None:
            continue
        key = _prompt_key(job.messages)
        if key in seen:
            continue
        seen.add(key)
        yield job, *found, key


def _split(key: str) -> str:
    return HELD_OUT if _held_out(key) else TRAIN


def _hold_one_out(pairs: list) -> list:
    """Too few for the hash to hold one out: the pair whose hash is smallest is, the same one each time."""
    if len(pairs) >= 2 and not any(p.split == HELD_OUT for p in pairs):
        lowest = min(pairs, key=lambda p: p.key)
        return [replace(p, split=HELD_OUT) if p is lowest else p for p in pairs]
    return pairs


def training_pairs(template, *, desk=None, edited_only: bool = True, limit: int | None = None) -> list[Pair]:
    """The template's approved jobs (of `desk`, when given; else of every desk) as pairs, oldest first. A prompt
    approved twice is one pair, with the newest approved text; `edited_only` keeps the jobs whose chosen candidate
    an editor changed (the lessons), else every approved one; `limit` keeps the newest that many."""
    newest = [
        Pair(
            job_id=str(job.pk),
            messages=job.messages,
            answer=answer,
            inputs=job.inputs,
            seed=job.params.get("seed") if isinstance(job.params.get("seed"), int) else None,
            edited=edited,
            key=key,
            split=_split(key),
            desk=job.desk.slug,
        )
        for job, answer, edited, key in _newest_first(template, desk, edited_only, limit)
    ]
    return _hold_one_out(list(reversed(newest)))


def training_index(template, *, desk=None, edited_only: bool = True, limit: int | None = None) -> list[PairRef]:
    """The same pairs as training_pairs, oldest first, without their texts: an export counts and splits them
    with this, then streams the texts (training_lines)."""
    newest = [
        PairRef(job_id=str(job.pk), key=key, split=_split(key), desk=job.desk.slug)
        for job, _, _, key in _newest_first(template, desk, edited_only, limit)
    ]
    return _hold_one_out(list(reversed(newest)))


def training_lines(refs: list[PairRef], split: str | None = None, *, edited_only: bool = True) -> Iterator[str]:
    """The JSONL lines of these pairs (of one split, or all), read from the database CHUNK jobs at a time, so
    an export of any size is streamed rather than built in memory. A pair whose job is gone (or no longer a
    pair) meanwhile is left out."""
    chosen = [r for r in refs if split is None or r.split == split]
    for start in range(0, len(chosen), CHUNK):
        part = chosen[start : start + CHUNK]
        found_jobs = Job.objects.filter(pk__in=[r.job_id for r in part]).prefetch_related("outputs")
        jobs = {str(job.pk): job for job in found_jobs}
        for ref in part:
            job = jobs.get(ref.job_id)
            found = _answer(job, edited_only) if job is not None else None
            if found is None:
                continue
            line = {"messages": [*job.messages, {"role": "assistant", "content": found[0]}]}
            yield json.dumps(line, ensure_ascii=False) + "\n"


def training_jsonl(pairs: list[Pair], split: str | None = None) -> str:
    """The pairs (of one split, or all) as JSONL, one chat per line."""
    return "".join(
        json.dumps(p.as_chat(), ensure_ascii=False) + "\n" for p in pairs if split is None or p.split == split
    )


def adapter_version_runnable(version, *, user, desk: Desk | None = None) -> bool:
    """Whether `user` may run this version (by its number): one without an adapter always; one with an adapter
    once it is pinned (a label points at it: the template's, or `desk`'s own label on it), and before that only
    template curators (staff, or those who may change templates), who try what nobody released yet."""
    if not version.adapter_sha256 or version.labels.exists():
        return True
    if desk is not None and version.desk_labels.filter(desk=desk).exists():
        return True
    return bool(user is not None and (user.is_staff or user.has_perm("generation.change_prompttemplate")))


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
