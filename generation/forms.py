"""Studio forms, generated from a template's declared variables so that the form and the API accept the
same inputs; the service does the validation, and its field errors are shown on the matching fields."""

from django import forms

from .models import Kind


class JobForm(forms.Form):
    PARAM_FIELDS = ("max_new_tokens", "temperature", "n", "seed")

    def __init__(self, template, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.template = template
        for var in template.variables:
            widget = forms.Textarea(attrs={"rows": 8}) if var.get("multiline") else forms.TextInput()
            self.fields[f"in_{var['name']}"] = forms.CharField(
                label=var.get("label") or var["name"].replace("_", " ").capitalize(),
                required=bool(var.get("required")),
                max_length=var.get("max_length"),
                initial=var.get("default", ""),
                help_text=var.get("help", ""),
                widget=widget,
                strip=True,
            )
        defaults = template.default_params
        self.fields["max_new_tokens"] = forms.IntegerField(
            label="Max new tokens", required=False, min_value=1, initial=defaults.get("max_new_tokens")
        )
        self.fields["temperature"] = forms.FloatField(
            label="Temperature", required=False, min_value=0, max_value=2, initial=defaults.get("temperature"),
            help_text="0 gives the same text every time.",
        )  # fmt: skip
        if template.kind == Kind.HEADLINE:
            self.fields["n"] = forms.IntegerField(label="Candidates", required=False, min_value=1, initial=defaults.get("n"))
        self.fields["seed"] = forms.IntegerField(label="Seed", required=False, min_value=0, help_text="Empty: a random one, recorded with the job.")

    @property
    def input_fields(self):
        return [f for f in self if f.name.startswith("in_")]

    @property
    def param_fields(self):
        return [f for f in self if not f.name.startswith("in_")]

    def inputs(self) -> dict:
        return {name[3:]: value for name, value in self.cleaned_data.items() if name.startswith("in_") and value != ""}

    def params(self) -> dict:
        return {k: self.cleaned_data[k] for k in self.PARAM_FIELDS if self.cleaned_data.get(k) is not None}

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        """Show the service's errors ("inputs.text", "params.n") on the fields they name."""
        for key, messages in errors.items():
            section, _, name = key.partition(".")
            field = f"in_{name}" if section == "inputs" else name
            for message in messages:
                self.add_error(field if field in self.fields else None, message)
