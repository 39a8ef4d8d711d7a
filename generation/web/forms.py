"""Forms generated from a template version's declared variables, so that the studio, the admin preview and
the API accept the same inputs. The service does the validation; its field errors land on the fields."""

import json

from django import forms
from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.forms.fields import JSONString
from django.utils.translation import gettext_lazy as _

from ..content import formats, gating, safeparse
from ..content.prompts import InvalidInput
from ..models import DeskRole, JobStatus, Kind, PromptTemplate, ReviewState, TemplateVersion
from ..selectors.budgets import MAX_BUDGET
from ..selectors.templates import localized


class _SafeDecoder(json.JSONDecoder):
    def decode(self, s, *args):
        return safeparse.loads(s)


class SafeJSONField(forms.JSONField):
    """forms.JSONField read by the one safe parser: a value nested too deep, NaN or a NUL character is a form
    error on this field saying what and where, never a RecursionError (a 500) while cleaning or redisplaying."""

    def __init__(self, **kwargs):
        kwargs.setdefault("decoder", _SafeDecoder)  # also what bound_data (redisplay) and has_changed parse with
        super().__init__(**kwargs)

    def to_python(self, value):
        if self.disabled or value in self.empty_values or not isinstance(value, str) or isinstance(value, JSONString):
            return super().to_python(value)
        try:
            converted = safeparse.loads(value)
        except safeparse.JSONInputError as exc:
            if exc.syntax:  # no JSON at all: Django's own message
                invalid = self.error_messages["invalid"]
                raise forms.ValidationError(invalid, code="invalid", params={"value": value}) from None
            message = _("Not accepted as JSON: %(why)s")
            raise forms.ValidationError(message, code="invalid", params={"why": exc}) from None
        return JSONString(converted) if isinstance(converted, str) else converted


def variable_field(var: dict) -> forms.Field:
    common = dict(
        label=localized(var, "label") or var["name"].replace("_", " ").capitalize(),
        required=bool(var.get("required")),
        initial=var.get("default", ""),
        help_text=localized(var, "help"),
    )
    kind = var.get("type", "text")
    if kind == "number":
        return forms.FloatField(min_value=var.get("min"), max_value=var.get("max"), **common)
    if kind == "choice":
        choices = [(c, c) for c in var.get("choices", [])]
        return forms.ChoiceField(choices=([("", "—")] if not var.get("required") else []) + choices, **common)
    widget = forms.Textarea(attrs={"rows": 8}) if var.get("multiline") else forms.TextInput()
    return forms.CharField(max_length=var.get("max_length"), widget=widget, strip=True, **common)


class InputsForm(forms.Form):
    """The template's variables as fields named `in_<variable>`."""

    def __init__(self, version: TemplateVersion, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.version = version
        for var in version.variables:
            self.fields[f"in_{var['name']}"] = variable_field(var)

    @property
    def input_fields(self):
        return [f for f in self if f.name.startswith("in_")]

    def inputs(self) -> dict:
        out = {}
        for name, value in self.cleaned_data.items():
            if name.startswith("in_") and value not in ("", None):
                out[name[3:]] = int(value) if isinstance(value, float) and value.is_integer() else value
        return out

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        """Show the service's errors ("inputs.text", "params.n") on the fields they name."""
        for key, messages in errors.items():
            section, _, name = key.partition(".")
            field = f"in_{name}" if section == "inputs" else name
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class JobForm(InputsForm):
    PARAM_FIELDS = ("max_new_tokens", "temperature", "n", "seed")

    def __init__(self, version: TemplateVersion, *args, desks=(), desk=None, **kwargs):
        super().__init__(version, *args, **kwargs)
        defaults = version.default_params
        if len(desks) > 1:  # a member of one desk files every job there: nothing to choose
            self.fields["desk"] = forms.ChoiceField(
                label=_("Desk"),
                choices=[(d.slug, d.name) for d in desks],
                initial=(desk or desks[0]).slug,
                help_text=_("The job is filed under this desk and held against its budgets."),
            )
        self.fields["max_new_tokens"] = forms.IntegerField(
            label=_("Max new tokens"),
            required=False,
            min_value=1,
            initial=None if version.length_variable else defaults.get("max_new_tokens"),
            help_text=_("Empty: set from the template (and its length input, if any)."),
        )
        self.fields["temperature"] = forms.FloatField(
            label=_("Temperature"),
            required=False,
            min_value=0,
            max_value=2,
            initial=defaults.get("temperature"),
            help_text=_("0 gives the same text every time."),
        )
        if formats.spec(version.output_format).many:
            self.fields["n"] = forms.IntegerField(
                label=_("Candidates"), required=False, min_value=1, initial=defaults.get("n")
            )
        self.fields["seed"] = forms.IntegerField(
            label=_("Seed"), required=False, min_value=0, help_text=_("Empty: a random one, recorded with the job.")
        )

    @staticmethod
    def initial_from(job) -> dict:
        """ "Edit inputs and run": the fields filled with what `job` ran with, to change before running anew. Not
        its seed (a new job, new variations) nor, where a length input sets it, the token limit derived from it
        (so that changing the length still counts)."""
        initial = {f"in_{name}": value for name, value in job.inputs.items()}
        skip = {"seed"} | ({"max_new_tokens"} if job.template_version.length_variable else set())
        initial.update({k: job.params[k] for k in JobForm.PARAM_FIELDS if k not in skip and k in job.params})
        if job.desk_id is not None:
            initial["desk"] = job.desk.slug
        return initial

    @property
    def param_fields(self):
        return [f for f in self if not f.name.startswith("in_")]

    def params(self) -> dict:
        data = self.cleaned_data
        # Only what the user changed from the template's defaults, so that derived defaults still apply.
        return {
            k: data[k]
            for k in self.PARAM_FIELDS
            if data.get(k) is not None and (k == "seed" or data[k] != self.version.default_params.get(k))
        }


class TemplateAdminForm(forms.ModelForm):
    """The template's own fields plus the content of its latest version; saving changed content creates a
    new version (versions are never edited in place)."""

    system_prompt = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 100}), required=False)
    user_template = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "cols": 100}), help_text="{name} inserts the input called name."
    )
    variables = SafeJSONField(
        initial=list,
        widget=forms.Textarea(attrs={"rows": 10, "cols": 100}),
        help_text='[{"name": "text", "type": "text|number|choice", "required": true, "default": "", "max_length": 20000, '
        '"min": 1, "max": 10, "choices": ["a", "b"], "label": "", "help": "", "multiline": true}]',
    )
    default_params = SafeJSONField(
        initial=dict,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 100}),
        help_text='{"max_new_tokens": 256, "temperature": 0.7, "top_p": 0.95, "n": 1}',
    )
    length_variable = forms.CharField(required=False, help_text="A number variable holding the word budget, if any.")
    output_format = forms.ChoiceField(choices=TemplateVersion._meta.get_field("output_format").choices, initial="text")
    model_alias = forms.CharField(initial="default")
    checks = SafeJSONField(
        initial=dict,
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 100}),
        help_text='{"source": "text", "grounding": true, "language": "en", "style": {"banned": [{"phrase": "slams", '
        '"replacement": "criticises"}], "spelling": "uk", "headline_case": "sentence", "headline_max_chars": 70, '
        '"numerals": "spell_one_to_nine", "chinese_punctuation": "full_width"}}. Empty: headlines and summaries '
        "are checked against their text input.",
    )
    adapter_sha256 = forms.CharField(
        required=False,
        max_length=64,
        label="LoRA adapter",
        help_text="The sha256 of a trained adapter (a training run's version names it); empty: the base model.",
    )
    note = forms.CharField(required=False, max_length=200, help_text="What changed, for the version history.")

    CONTENT_FIELDS = TemplateVersion.CONTENT_FIELDS

    class Meta:
        model = PromptTemplate
        fields = ["slug", "kind", "name", "description", "is_default", "desk", "gate_dataset", "gate"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        latest = self.instance.versions.order_by("-number").first() if self.instance.pk else None
        if latest is not None:
            for field in self.CONTENT_FIELDS:
                self.initial[field] = getattr(latest, field)
            self.fields["slug"].disabled = True  # jobs and editorial tools refer to it
            self.fields["kind"].disabled = True

    def content(self) -> dict:
        # A textarea posts its line breaks as CRLF: kept, a save of unchanged multi-line prompts made a new version.
        return {
            f: v.replace("\r\n", "\n") if isinstance(v := self.cleaned_data.get(f), str) else v
            for f in self.CONTENT_FIELDS
        }

    def clean_gate_dataset(self):
        """A gate on a dataset that does not exist would refuse every protected move: name one that does."""
        name = self.cleaned_data.get("gate_dataset", "")
        if name and self.instance.pk and not self.instance.datasets.filter(name=name).exists():
            names = sorted(set(self.instance.datasets.values_list("name", flat=True)))
            raise forms.ValidationError(
                f"No dataset {name!r} for this template; its datasets: {', '.join(names) or 'none yet'}."
            )
        return name

    def clean_gate(self):
        """The gate's thresholds, checked as the label move will read them; errors keyed "gate.max_drop.chrf"."""
        gate = self.cleaned_data.get("gate")
        if gate in (None, ""):
            return {}
        try:
            gating.parse(gate)
        except InvalidInput as exc:
            raise forms.ValidationError([f"{key}: {' '.join(msgs)}" for key, msgs in exc.errors.items()]) from None
        return gate

    @property
    def variable_errors(self) -> dict[str, dict[str, list[str]]]:
        """The errors of each variable by row index and key ("" for the row itself), for the row editor
        (static/studio/template-editor.js) to show on the row at fault."""
        return getattr(self, "_variable_errors", {})

    def add_content_errors(self, errors: dict[str, list[str]]) -> None:
        """Errors keyed as the services key them ("variables.2.max_length") go on the field they start with,
        prefixed by the key (what a curator without JavaScript reads), and a variable's also on its row."""
        rows = self._variable_errors = dict(self.variable_errors)
        for key, messages in errors.items():
            target, _, rest = key.partition(".")
            self.add_error(target if target in self.fields else None, [f"{key}: {m}" for m in messages])
            index, _, part = rest.partition(".")
            if target == "variables" and index.isdigit():
                rows.setdefault(index, {}).setdefault(part, []).extend(messages)

    @classmethod
    def clean_draft(cls, data: object) -> tuple[dict, dict[str, list[str]]]:
        """A draft's content fields (their raw text, as the form would post them) cleaned by the form's own
        fields, for the live preview: (content, errors by field); a field at fault keeps its raw text."""
        data = data if isinstance(data, dict) else {}
        content, errors = {}, {}
        for name in cls.CONTENT_FIELDS:
            raw = data.get(name, "")
            raw = raw if isinstance(raw, str) else ""
            try:
                content[name] = cls.base_fields[name].clean(raw)
            except forms.ValidationError as exc:
                content[name], errors[name] = raw, exc.messages
        return content, errors


class LabelMoveForm(forms.Form):
    label = forms.SlugField(max_length=40, help_text="production, staging, or any name.")
    version = forms.IntegerField(min_value=1)
    reason = forms.CharField(required=False, max_length=2000, help_text="Why; kept with the move.")
    override = forms.BooleanField(
        required=False, help_text="Staff only, with a reason: move although the gate refuses."
    )


class FeedbackForm(forms.Form):
    rating = forms.TypedChoiceField(choices=[("1", _("Good")), ("-1", _("Bad"))], coerce=int, label=_("Rating"))
    comment = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), label=_("Comment")
    )


class OutputEditForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 16}), strip=False, label=_("Final text"))


class ReviewForm(forms.Form):
    to_state = forms.ChoiceField(choices=ReviewState.choices)
    note = forms.CharField(required=False, max_length=2000, label=_("Note"))


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, label=_("Name"), help_text=_("Where the key is used, e.g. “CMS plugin”."))


class HistoryFilterForm(forms.Form):
    """The history's filters, read from the query string; anything invalid is simply not applied."""

    q = forms.CharField(required=False, label=_("Search"))
    kind = forms.ChoiceField(required=False, choices=[("", _("Any kind")), *list(Kind.choices)], label=_("Kind"))
    status = forms.ChoiceField(
        required=False, choices=[("", _("Any status")), *list(JobStatus.choices)], label=_("Status")
    )
    template = forms.ChoiceField(required=False, label=_("Template"))
    review = forms.ChoiceField(
        required=False, choices=[("", _("Any state")), *list(ReviewState.choices)], label=_("Review")
    )
    since = forms.DateField(required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))
    findings = forms.BooleanField(required=False, label=_("With findings"))

    def __init__(self, *args, templates=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [("", _("Any template"))] + [
            (t.slug, localized(t, "name")) for t in templates
        ]

    def filters(self) -> dict:
        self.is_valid()  # fields that did not validate are left out of cleaned_data
        return {k: v for k, v in self.cleaned_data.items() if v}


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, label=_("Username"))
    role = forms.ChoiceField(choices=DeskRole.choices, initial=DeskRole.EDITOR, label=_("Role"))


class MembershipForm(forms.Form):
    """A member's role and own shares; empty shares take the desk's member share."""

    role = forms.ChoiceField(choices=DeskRole.choices, label=_("Role"))
    tokens_per_day = forms.IntegerField(required=False, min_value=0, max_value=MAX_BUDGET, label=_("Tokens a day"))
    tokens_per_month = forms.IntegerField(required=False, min_value=0, max_value=MAX_BUDGET, label=_("Tokens a month"))


class DeskBudgetForm(forms.Form):
    """The desk's budgets and each member's default share, in tokens (prompt plus completion); empty: none. Staff's
    cap on the desk (the admin) bounds them all; the service refuses a figure above it."""

    tokens_per_day = forms.IntegerField(required=False, min_value=0, max_value=MAX_BUDGET, label=_("Desk, a day"))
    tokens_per_month = forms.IntegerField(required=False, min_value=0, max_value=MAX_BUDGET, label=_("Desk, a month"))
    member_tokens_per_day = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_BUDGET, label=_("Each member, a day")
    )
    member_tokens_per_month = forms.IntegerField(
        required=False, min_value=0, max_value=MAX_BUDGET, label=_("Each member, a month")
    )


class DeskTemplateCreateForm(forms.Form):
    source = forms.ModelChoiceField(queryset=PromptTemplate.objects.none(), label=_("Start from"), to_field_name="slug")
    slug = forms.SlugField(
        max_length=64,
        label=_("Slug"),
        help_text=_("Saved under the desk's name: <desk>--<slug>, e.g. sport--match-report."),
    )
    name = forms.CharField(max_length=120, label=_("Name"))

    def __init__(self, *args, templates=None, **kwargs):
        super().__init__(*args, **kwargs)
        if templates is not None:
            self.fields["source"].queryset = templates


class DeskTemplateEditForm(forms.Form):
    """The prompts of a desk's own template; saving makes a new version (inputs, format and checks stay)."""

    system_prompt = forms.CharField(
        required=False, strip=False, widget=forms.Textarea(attrs={"rows": 3}), label=_("System prompt")
    )
    user_template = forms.CharField(strip=False, widget=forms.Textarea(attrs={"rows": 4}), label=_("User message"))
    note = forms.CharField(required=False, max_length=200, label=_("What changed"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        most = settings.AIGC["MAX_PROMPT_CHARS"]
        for name in ("system_prompt", "user_template"):  # the service's cap, told on the field before it is sent
            self.fields[name].max_length = most
            self.fields[name].validators.append(MaxLengthValidator(most))
            self.fields[name].widget.attrs["maxlength"] = str(most)


class DeskLabelForm(forms.Form):
    """Where production points for the desk: a version, or (a shared template) the shared label."""

    version = forms.TypedChoiceField(coerce=int, empty_value=None, required=False, label="Production")

    def __init__(self, *args, versions=(), shared=None, **kwargs):
        super().__init__(*args, **kwargs)
        follow = [("", f"Follow the shared label (v{shared.number})")] if shared is not None else []
        self.fields["version"].choices = follow + [(v.number, f"v{v.number}") for v in versions]
