"""One default prompt template per kind, worded for the small bundled model (short, direct instructions)."""

from django.db import migrations

TEXT_LIMIT = 20000

DEFAULTS = [
    {
        "kind": "writing",
        "slug": "article",
        "name": "Article",
        "description": "A piece of prose on a topic, in a chosen tone and length.",
        "system_prompt": (
            "You are a professional writer for a newsroom and blog team. "
            "You write clear, well-structured prose in plain paragraphs."
        ),
        "user_template": "Write a {tone} article of about {words} words about: {topic}",
        "variables": [
            {"name": "topic", "label": "Topic", "required": True, "max_length": 500, "help": "What the piece is about."},
            {"name": "tone", "label": "Tone", "required": False, "default": "informative", "max_length": 40},
            {"name": "words", "label": "Length in words", "required": False, "default": "300", "max_length": 5},
        ],
        "default_params": {"max_new_tokens": 512, "temperature": 0.7, "top_p": 0.9, "n": 1},
    },
    {
        "kind": "summary",
        "slug": "summary",
        "name": "Summary",
        "description": "A short summary of a text.",
        "system_prompt": "You summarise texts accurately and briefly.",
        "user_template": "Summarise the following text in at most {words} words. Reply with the summary only.\n\nText:\n{text}",
        "variables": [
            {"name": "text", "label": "Text", "required": True, "max_length": TEXT_LIMIT, "multiline": True},
            {"name": "words", "label": "Length in words", "required": False, "default": "60", "max_length": 5},
        ],
        "default_params": {"max_new_tokens": 200, "temperature": 0.3, "top_p": 0.9, "n": 1},
    },
    {
        "kind": "headline",
        "slug": "headline",
        "name": "News headlines",
        "description": "Several candidate headlines for an article, one per output.",
        "system_prompt": "You are a news editor. You write short, accurate, catchy headlines.",
        "user_template": "Write a headline for this news story. Reply with the headline only, on one line.\n\nStory: {text}",
        "variables": [
            {
                "name": "text",
                "label": "Article",
                "required": True,
                "max_length": TEXT_LIMIT,
                "multiline": True,
                "help": "The article or news paragraph to write headlines for.",
            },
        ],
        "default_params": {"max_new_tokens": 32, "temperature": 0.8, "top_p": 0.95, "n": 5},
    },
    {
        "kind": "code",
        "slug": "code",
        "name": "Code",
        "description": "Code for a task described in words; the output is the code alone.",
        "system_prompt": "You are an expert programmer. Reply with one {language} code block and nothing else.",
        "user_template": "Write {language} code for this task: {instruction}",
        "variables": [
            {"name": "instruction", "label": "Task", "required": True, "max_length": 4000, "multiline": True},
            {"name": "language", "label": "Language", "required": False, "default": "python", "max_length": 30},
        ],
        "default_params": {"max_new_tokens": 384, "temperature": 0.2, "top_p": 0.9, "n": 1},
    },
]


def create_defaults(apps, schema_editor):
    PromptTemplate = apps.get_model("generation", "PromptTemplate")
    for spec in DEFAULTS:
        PromptTemplate.objects.update_or_create(slug=spec["slug"], defaults={**spec, "is_default": True})


def remove_defaults(apps, schema_editor):
    apps.get_model("generation", "PromptTemplate").objects.filter(slug__in=[s["slug"] for s in DEFAULTS], jobs__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0001_initial")]
    operations = [migrations.RunPython(create_defaults, remove_defaults)]
