"""The template behind the OpenAI-compatible API: its jobs carry the caller's own messages (stored as the
job's `messages` and inputs), so the template only names the kind, the output format and default params."""

from django.db import migrations

SPEC = dict(
    system_prompt="",
    user_template="{prompt}",
    variables=[{"name": "prompt", "type": "text", "label": "Prompt", "required": True, "max_length": 100000, "multiline": True}],
    default_params={"max_new_tokens": 256, "temperature": 0.7, "top_p": 1.0, "n": 1},
    length_variable="",
    output_format="text",
)


def create(apps, schema_editor):
    PromptTemplate = apps.get_model("generation", "PromptTemplate")
    TemplateVersion = apps.get_model("generation", "TemplateVersion")
    TemplateLabel = apps.get_model("generation", "TemplateLabel")
    template, created = PromptTemplate.objects.get_or_create(
        slug="chat", defaults={"kind": "writing", "name": "Chat (OpenAI-compatible API)",
                               "description": "Runs the caller's messages as they are.", "is_default": False},
    )  # fmt: skip
    if created:
        version = TemplateVersion.objects.create(template=template, number=1, note="Default template", model_alias="default", **SPEC)
        for label in ("production", "staging"):
            TemplateLabel.objects.create(template=template, name=label, version=version)


def remove(apps, schema_editor):
    apps.get_model("generation", "PromptTemplate").objects.filter(slug="chat", jobs__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0005_api_for_tools")]
    operations = [migrations.RunPython(create, remove)]
