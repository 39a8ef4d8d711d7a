"""Templates: versions (immutable), labels (movable), previews, export and import."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max

from .. import selectors
from ..content import checks, formats, gating, prompts
from ..infra import registry
from ..models import (
    Adapter,
    DeskLabel,
    GateChange,
    LabelMove,
    ModelInfo,
    PromptTemplate,
    TemplateLabel,
    TemplateVersion,
)


def param_limits() -> prompts.ParamLimits:
    """This deployment's caps on generation params (settings), for jobs and template defaults alike."""
    return prompts.ParamLimits(
        max_new_tokens=settings.AIGC["MAX_NEW_TOKENS"], max_candidates=settings.AIGC["MAX_CANDIDATES"]
    )


def check_content(content: dict) -> dict:
    """Validate a version's content; returns it with defaults filled. Raises ValidationError naming fields."""
    content = {
        "system_prompt": content.get("system_prompt", "") or "",
        "user_template": content.get("user_template", "") or "",
        "variables": content.get("variables", []),
        "default_params": content.get("default_params", {}) or {},
        "length_variable": content.get("length_variable", "") or "",
        "output_format": content.get("output_format", "") or "text",
        "model_alias": content.get("model_alias", "") or "default",
        "checks": content.get("checks") or {},
        "adapter_sha256": content.get("adapter_sha256", "") or "",
    }
    errors: dict[str, list[str]] = {}
    most = settings.AIGC["MAX_PROMPT_CHARS"]
    for name in ("system_prompt", "user_template"):
        if not isinstance(content[name], str):
            errors[name] = ["Must be text."]
            content[name] = ""
        elif len(content[name]) > most:  # every version is kept and read: a prompt's size is bounded
            errors[name] = [f"At most {most} characters (this one has {len(content[name])})."]
    if not content["user_template"].strip() and "user_template" not in errors:
        errors["user_template"] = ["This field is required."]
    try:
        prompts.check_variables(
            content["variables"],
            {"system_prompt": content["system_prompt"], "user_template": content["user_template"]},
            content["length_variable"],
        )
    except prompts.InvalidInput as exc:
        errors.update(exc.errors)
    try:
        prompts.clean_params(content["default_params"], {}, param_limits())
    except prompts.InvalidInput as exc:
        errors.update({key.replace("params", "default_params", 1): v for key, v in exc.errors.items()})
    try:
        content["checks"] = checks.parse(content["checks"], variables=content["variables"]).as_json()
    except prompts.InvalidInput as exc:
        errors.update(exc.errors)
    if content["output_format"] not in formats.OUTPUT_FORMATS:
        errors["output_format"] = [f"One of {', '.join(formats.OUTPUT_FORMATS)}."]
    if content["model_alias"] not in registry.aliases():
        errors["model_alias"] = [f"Unknown model alias; configured: {', '.join(registry.aliases())}."]
    elif content["adapter_sha256"]:
        if not Adapter.objects.filter(sha256=content["adapter_sha256"]).exists():
            errors["adapter_sha256"] = ["No trained adapter has this sha256."]
        elif registry.entry(content["model_alias"])["backend"] not in registry.ADAPTER_BACKENDS:
            errors["model_alias"] = [
                f"A LoRA adapter is served by the {' or '.join(registry.ADAPTER_BACKENDS)} backend; "
                f"{content['model_alias']!r} is not."
            ]
    if errors:
        raise ValidationError(errors)
    return content


@transaction.atomic
def template_create(
    *,
    slug: str,
    kind: str,
    name: str,
    description: str = "",
    is_default: bool = False,
    user=None,
    note: str = "",
    desk=None,
    **content,
) -> PromptTemplate:
    """A new template with its first version, labelled production (and staging); with a desk, that desk's own."""
    if PromptTemplate.objects.filter(slug=slug).exists():
        raise ValidationError({"slug": [f"A template {slug!r} already exists."]})
    content = check_content(content)
    template = PromptTemplate.objects.create(
        slug=slug, kind=kind, name=name, description=description, is_default=is_default, desk=desk
    )
    version = TemplateVersion.objects.create(
        template=template, number=1, created_by=user, note=note or "First version", **content
    )
    for label in (TemplateLabel.PRODUCTION, TemplateLabel.STAGING):
        template_label_move(template=template, label=label, version=version, user=user)
    return template


@transaction.atomic
def template_version_create(
    *, template: PromptTemplate, user=None, note: str = "", max_versions: int | None = None, **content
) -> tuple[TemplateVersion, bool]:
    """Save an edit as a new version. An edit that changes nothing returns the latest version, not a copy. With
    `max_versions` (a desk's own template), a template that has that many takes no more."""
    content = check_content(content)
    PromptTemplate.objects.select_for_update().filter(pk=template.pk).first()  # serialise numbering (and the count)
    latest = template.versions.order_by("-number").first()
    if latest is not None and latest.content() == content:
        return latest, False
    if max_versions is not None and (has := template.versions.count()) >= max_versions:
        said = f"{template.slug!r} has {has} versions, the most a template may keep: start a new one from it."
        raise ValidationError({"template": [said]})
    number = (template.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    return TemplateVersion.objects.create(template=template, number=number, created_by=user, note=note, **content), True


class GateRefused(ValidationError):
    """A protected label's move refused by the promotion gate; `failures` are the reasons, with the numbers."""

    def __init__(self, failures: list[str], experiment=None) -> None:
        super().__init__({"version": failures})
        self.failures, self.experiment = failures, experiment


def _gate(template, label, version, current, *, user, reason: str, override: bool):
    """The promotion gate on moving `label` from `current` to `version`: (the experiment that allowed it,
    whether staff overrode a refusal). Raises GateRefused, or a ValidationError on a bad override."""
    from .evaluation import gate_judge

    experiment, failures = gate_judge(template, label, version, current)
    if not failures:
        return experiment, False
    if not override:
        raise GateRefused(failures, experiment)
    if not (user is not None and user.is_staff):
        raise ValidationError({"override": ["Only staff may override the promotion gate."]})
    if not reason.strip():
        raise ValidationError({"reason": ["Overriding the gate needs a written reason."]})
    return experiment, True


@transaction.atomic
def template_gate_set(
    *, template: PromptTemplate, gate_dataset: str, gate, user=None, via: str = ""
) -> GateChange | None:
    """Set a template's promotion gate (its dataset and thresholds), the change kept as a GateChange row with who
    made it: a gate turned off before a label move and on again after it is there to read beside the move. A
    setting that changes nothing keeps nothing (None)."""
    try:
        gating.parse(gate)
    except prompts.InvalidInput as exc:
        raise ValidationError(exc.errors) from None
    gate_dataset, gate = gate_dataset or "", gate or {}
    stored = PromptTemplate.objects.select_for_update().get(pk=template.pk)
    template.gate_dataset, template.gate = gate_dataset, gate
    if (stored.gate_dataset, stored.gate) == (gate_dataset, gate):
        return None
    PromptTemplate.objects.filter(pk=template.pk).update(gate_dataset=gate_dataset, gate=gate)
    return GateChange.objects.create(
        template=template,
        from_dataset=stored.gate_dataset,
        from_gate=stored.gate,
        to_dataset=gate_dataset,
        to_gate=gate,
        changed_by=user,
        via=via,
    )


def _check_label_name(label: str) -> None:
    if not label or not label.replace("-", "").replace("_", "").isalnum():
        raise ValidationError({"label": ["A label is letters, digits, '-' and '_'."]})


@transaction.atomic
def template_label_move(
    *,
    template: PromptTemplate,
    label: str,
    version: TemplateVersion,
    user=None,
    reason: str = "",
    override: bool = False,
) -> TemplateLabel:
    """Point `label` at `version`: publishing (production), staging, or rolling back. A label the template's
    gate protects moves only with a finished experiment that passes it (services/evaluation.gate_judge), or
    by staff overriding with a written reason; the move keeps who, when, why and the experiment."""
    if version.template_id != template.pk:
        raise ValidationError({"version": [f"Version {version.pk} belongs to another template."]})
    _check_label_name(label)
    # The template's row first: two first placements of the same label at once queue here, and the second finds
    # the label the first created (a label's row cannot be locked before it exists).
    PromptTemplate.objects.select_for_update().filter(pk=template.pk).first()
    current = TemplateLabel.objects.select_for_update().filter(template=template, name=label).first()
    previous = current.version if current else None
    if previous == version:
        return current
    experiment, overridden = _gate(template, label, version, previous, user=user, reason=reason, override=override)
    if current is None:
        current = TemplateLabel.objects.create(template=template, name=label, version=version, moved_by=user)
    else:
        current.version, current.moved_by = version, user
        current.save(update_fields=["version", "moved_by", "moved_at"])
    _history(previous, version, user, reason, experiment, overridden, label=current)
    return current


def _history(previous, version, user, reason: str, experiment, overridden: bool, **moved) -> LabelMove:
    """A label's move, kept: from where to where, who, why, and the experiment that allowed it; `moved` names
    the label (`label`, a template's own, or `desk_label`)."""
    return LabelMove.objects.create(
        from_version=previous,
        to_version=version,
        moved_by=user,
        reason=reason.strip(),
        experiment=experiment,
        overridden=overridden,
        **moved,
    )


@transaction.atomic
def desk_label_move(
    *,
    desk,
    template: PromptTemplate,
    label: str,
    version: TemplateVersion | None,
    user=None,
    reason: str = "",
    override: bool = False,
) -> DeskLabel:
    """Point a desk's own `label` on a shared template at `version`, or (None) follow the template's label
    again. Judged by the same gate against what the desk's jobs run now; going back to the shared label is
    always allowed, since that label passed the gate itself."""
    if template.desk_id is not None:
        raise ValidationError({"template": [f"{template.slug!r} is a desk's own template: move its own labels."]})
    if version is not None and version.template_id != template.pk:
        raise ValidationError({"version": [f"Version {version.pk} belongs to another template."]})
    _check_label_name(label)
    PromptTemplate.objects.select_for_update().filter(pk=template.pk).first()  # one move of a desk label at once
    own, _ = DeskLabel.objects.get_or_create(desk=desk, template=template, name=label)
    shared = template.labels.filter(name=label).select_related("version").first()
    previous = own.version
    if previous == version:
        return own
    experiment, overridden = None, False
    if version is not None:
        current = previous or (shared.version if shared else None)
        experiment, overridden = _gate(template, label, version, current, user=user, reason=reason, override=override)
    elif shared is None:
        raise ValidationError({"version": [f"{template.slug!r} has no shared {label!r} label to follow."]})
    own.version, own.moved_by = version, user
    own.save(update_fields=["version", "moved_by", "moved_at"])
    _history(previous, version, user, reason, experiment, overridden, desk_label=own)
    return own


def resolve_version(
    template: PromptTemplate, *, version: int | None = None, label: str | None = None, desk=None
) -> TemplateVersion:
    """The version a job runs: a number, or a label (production by default), the desk's own label on the
    template first."""
    if version is not None and label:
        raise ValidationError({"version": ["Give a version or a label, not both."]})
    if version is not None:
        found = template.versions.filter(number=version).first()
        if found is None:
            numbers = ", ".join(str(n) for n in template.versions.order_by("number").values_list("number", flat=True))
            raise ValidationError(
                {"version": [f"Template {template.slug!r} has no version {version}; it has {numbers}."]}
            )
        return found
    name = label or TemplateLabel.PRODUCTION
    if desk is not None:
        pinned = DeskLabel.objects.filter(desk=desk, template=template, name=name, version__isnull=False).first()
        if pinned is not None:
            return pinned.version
    found = template.labels.select_related("version").filter(name=name).first()
    if found is None:
        names = ", ".join(template.labels.values_list("name", flat=True)) or "none"
        raise ValidationError({"label": [f"Template {template.slug!r} has no label {name!r}; its labels: {names}."]})
    return found.version


def template_preview(version: TemplateVersion, inputs: dict, params: dict | None = None) -> dict:
    """The exact text the model will receive for these inputs, and its size against the context."""
    try:
        cleaned = prompts.clean_inputs(version.variables, inputs)
        cleaned_params = prompts.clean_params(params or {}, version.default_params, param_limits())
    except prompts.InvalidInput as exc:
        raise ValidationError(exc.errors) from None
    messages = checks.version_messages(version, cleaned)
    preview = {"messages": messages, "inputs": cleaned, "max_new_tokens": cleaned_params["max_new_tokens"]}
    counter = selectors.prompt_counter(version.model_alias)
    if counter is not None:
        preview.update(
            prompt_text=counter.render(messages),
            prompt_tokens=counter.count(messages),
            context_length=counter.context_length,
        )
        preview["fits"] = preview["prompt_tokens"] + preview["max_new_tokens"] <= counter.context_length
    return preview


def model_info_publish(alias: str, description: dict) -> ModelInfo:
    """Record what a worker serves under `alias`, so the web tier can count and preview prompts."""
    info, _ = ModelInfo.objects.update_or_create(alias=alias, defaults=description)
    return info


# --- export / import, so that prompt changes can be reviewed in git ---------------------------------------

EXPORT_FORMAT = 1


def templates_export(slugs: list[str] | None = None) -> dict:
    templates = PromptTemplate.objects.prefetch_related("versions", "labels__version").order_by("slug")
    if slugs:
        templates = templates.filter(slug__in=slugs)
    return {
        "format": EXPORT_FORMAT,
        "templates": [
            {
                "slug": t.slug,
                "kind": t.kind,
                "name": t.name,
                "description": t.description,
                "is_default": t.is_default,
                "gate_dataset": t.gate_dataset,
                "gate": t.gate,
                "labels": {label.name: label.version.number for label in sorted(t.labels.all(), key=lambda x: x.name)},
                "versions": [
                    {"number": v.number, "note": v.note, **v.content()}
                    for v in sorted(t.versions.all(), key=lambda x: x.number)
                ],
            }
            for t in templates
        ],
    }


@transaction.atomic
def templates_import(data: dict, user=None) -> dict:
    """Create missing templates and versions and move labels as in `data`. A version number that exists with
    other content is a conflict: nothing is written then. Returns counts of what changed."""
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT or not isinstance(data.get("templates"), list):
        raise ValidationError({"format": [f"Not a template export (format {EXPORT_FORMAT})."]})
    counts = {"templates": 0, "versions": 0, "labels": 0}
    for i, spec in enumerate(data["templates"]):
        where = f"templates.{i}"
        template = PromptTemplate.objects.filter(slug=spec["slug"]).first()
        if template is None:
            template = PromptTemplate.objects.create(
                slug=spec["slug"],
                kind=spec["kind"],
                name=spec.get("name", spec["slug"]),
                description=spec.get("description", ""),
            )
            counts["templates"] += 1
        elif template.kind != spec["kind"]:
            raise ValidationError({f"{where}.kind": [f"{template.slug!r} is a {template.kind!r} template here."]})
        if "gate_dataset" in spec or "gate" in spec:  # exports from before the gate have neither: left as they are
            gate_dataset, gate = spec.get("gate_dataset", template.gate_dataset), spec.get("gate", template.gate)
            try:
                gating.parse(gate)
            except prompts.InvalidInput as exc:
                raise ValidationError({f"{where}.{k}": v for k, v in exc.errors.items()}) from None
            template_gate_set(template=template, gate_dataset=gate_dataset, gate=gate, user=user, via="import")
        by_number = {}
        for v in sorted(spec.get("versions", []), key=lambda x: x["number"]):
            content = check_content(v)
            existing = template.versions.filter(number=v["number"]).first()
            if existing is not None:
                if existing.content() != content:
                    raise ValidationError(
                        {f"{where}.versions": [f"{template.slug} v{v['number']} differs from the one here."]}
                    )
                by_number[v["number"]] = existing
                continue
            by_number[v["number"]] = TemplateVersion.objects.create(
                template=template, number=v["number"], note=v.get("note", ""), created_by=user, **content
            )
            counts["versions"] += 1
        for label, number in spec.get("labels", {}).items():
            version = by_number.get(number) or template.versions.filter(number=number).first()
            if version is None:
                raise ValidationError({f"{where}.labels.{label}": [f"No version {number}."]})
            if not template.labels.filter(name=label, version=version).exists():
                try:  # a protected label moves only through the gate, from git as from the admin
                    template_label_move(template=template, label=label, version=version, user=user)
                except GateRefused as exc:
                    raise ValidationError({f"{where}.labels.{label}": exc.failures}) from None
                counts["labels"] += 1
        if spec.get("is_default") and not template.is_default:
            PromptTemplate.objects.filter(kind=template.kind, is_default=True).update(is_default=False)
            PromptTemplate.objects.filter(pk=template.pk).update(is_default=True)
    return counts
