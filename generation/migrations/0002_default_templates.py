"""The default templates, one version each, labelled production and staging.

Worded for the small bundled model: short, direct instructions, one task per prompt; the service adds the
rest (word budgets become token budgets, outputs are shaped and checked against each task's contract).
"""

from django.db import migrations

TEXT = 20000


def text(name, label, required=True, max_length=TEXT, multiline=False, default="", help=""):
    spec = {"name": name, "type": "text", "label": label, "required": required, "max_length": max_length}
    if multiline:
        spec["multiline"] = True
    if default:
        spec["default"] = default
    if help:
        spec["help"] = help
    return spec


def number(name, label, default, low, high, help=""):
    return {"name": name, "type": "number", "label": label, "required": False, "default": default, "min": low, "max": high, "help": help}


def choice(name, label, choices, default):
    return {"name": name, "type": "choice", "label": label, "required": False, "choices": choices, "default": default}


WRITER = "You are a professional writer. You write clear, factual prose in plain paragraphs, without headings or lists."

TEMPLATES = [
    # --- writing ---
    dict(
        kind="writing", slug="article", name="Article", is_default=True,
        description="An article on a topic, in a chosen tone and length.",
        system_prompt=WRITER,
        user_template="Write a {tone} article of about {words} words about: {topic}",
        variables=[
            text("topic", "Topic", max_length=500, help="What the article is about."),
            choice("tone", "Tone", ["informative", "friendly", "formal", "persuasive"], "informative"),
            number("words", "Length in words", 300, 50, 1500),
        ],
        length_variable="words", output_format="text",
        default_params={"max_new_tokens": 512, "temperature": 0.7, "top_p": 0.9, "n": 1},
    ),
    dict(
        kind="writing", slug="blog-post", name="Blog post",
        description="A friendly blog post for a given audience.",
        system_prompt="You are a blogger with a warm, conversational style. You write in short paragraphs.",
        user_template="Write a blog post of about {words} words for {audience} about: {topic}",
        variables=[
            text("topic", "Topic", max_length=500),
            text("audience", "Audience", required=False, max_length=100, default="general readers"),
            number("words", "Length in words", 400, 50, 1500),
        ],
        length_variable="words", output_format="text",
        default_params={"max_new_tokens": 640, "temperature": 0.7, "top_p": 0.9, "n": 1},
    ),
    dict(
        kind="writing", slug="product-description", name="Product description",
        description="A short description for a product page.",
        system_prompt="You are a copywriter. You write vivid, honest product descriptions in one or two paragraphs.",
        user_template="Write a product description of about {words} words for this product: {product}\nKey features: {features}",
        variables=[
            text("product", "Product", max_length=200),
            text("features", "Key features", max_length=2000, multiline=True),
            number("words", "Length in words", 80, 20, 400),
        ],
        length_variable="words", output_format="text",
        default_params={"max_new_tokens": 160, "temperature": 0.7, "top_p": 0.9, "n": 1},
    ),
    dict(
        kind="writing", slug="social-post", name="Social media post",
        description="A short post for a social network.",
        system_prompt="You are a social media editor. You write short, engaging posts.",
        user_template="Write a {platform} post of about {words} words about: {topic}\nReply with the post only.",
        variables=[
            text("topic", "Topic", max_length=1000, multiline=True),
            choice("platform", "Platform", ["LinkedIn", "X", "Facebook", "Instagram"], "LinkedIn"),
            number("words", "Length in words", 40, 10, 150),
        ],
        length_variable="words", output_format="text",
        default_params={"max_new_tokens": 96, "temperature": 0.8, "top_p": 0.9, "n": 1},
    ),
    # --- summary ---
    dict(
        kind="summary", slug="summary", name="Summary (short paragraph)", is_default=True,
        description="A short paragraph that summarises a text.",
        system_prompt="You summarise texts accurately and briefly.",
        user_template="Summarise the following text in one short paragraph of at most {words} words. Reply with the summary only.\n\nText:\n{text}",
        variables=[text("text", "Text", multiline=True), number("words", "Length in words", 60, 10, 500)],
        length_variable="words", output_format="text",
        default_params={"max_new_tokens": 200, "temperature": 0.3, "top_p": 0.9, "n": 1},
    ),
    dict(
        kind="summary", slug="summary-bullets", name="Summary (bullet points)",
        description="The key points of a text as a short bulleted list.",
        system_prompt="You summarise texts as short bullet points.",
        user_template="List the {points} most important points of the following text as bullet points starting with \"- \". Reply with the list only.\n\nText:\n{text}",
        variables=[
            text("text", "Text", multiline=True),
            number("points", "Number of points", 3, 2, 8),
            number("words", "Length in words", 60, 10, 500),
        ],
        length_variable="words", output_format="list",
        default_params={"max_new_tokens": 200, "temperature": 0.3, "top_p": 0.9, "n": 1},
    ),
    # --- headline ---
    dict(
        kind="headline", slug="headline", name="News headlines", is_default=True,
        description="Several candidate headlines for an article, one per output.",
        system_prompt="You are a news editor. You write short, accurate, catchy headlines.",
        user_template="Write a headline for this news story. Reply with the headline only, on one line.\n\nStory: {text}",
        variables=[text("text", "Article", multiline=True, help="The article or news paragraph to write headlines for.")],
        output_format="headline",
        default_params={"max_new_tokens": 32, "temperature": 0.8, "top_p": 0.95, "n": 5},
    ),
    dict(
        kind="headline", slug="seo-title", name="SEO title",
        description="Search-friendly page titles for an article, one per output.",
        system_prompt="You are an SEO editor. You write concise page titles that include the main keyword.",
        user_template="Write an SEO title of 5 to 12 words for this article. Reply with the title only, on one line.\n\nArticle: {text}",
        variables=[text("text", "Article", multiline=True)],
        output_format="headline",
        default_params={"max_new_tokens": 32, "temperature": 0.8, "top_p": 0.95, "n": 3},
    ),
    # --- code ---
    dict(
        kind="code", slug="code", name="Write a function", is_default=True,
        description="Code for a task described in words; the output is the code alone.",
        system_prompt="You are an expert programmer. Reply with one {language} code block and nothing else.",
        user_template="Write {language} code for this task: {instruction}",
        variables=[
            text("instruction", "Task", max_length=4000, multiline=True),
            text("language", "Language", required=False, max_length=30, default="python"),
        ],
        output_format="code",
        default_params={"max_new_tokens": 384, "temperature": 0.2, "top_p": 0.9, "n": 1},
    ),
    dict(
        kind="code", slug="code-explain", name="Explain code",
        description="A plain-language explanation of a piece of code.",
        system_prompt="You are a patient programming teacher. You explain code in plain words.",
        user_template="Explain in at most {words} words what this code does.\n\n```\n{code}\n```",
        variables=[text("code", "Code", max_length=TEXT, multiline=True), number("words", "Length in words", 120, 20, 600)],
        length_variable="words", output_format="text",
        default_params={"max_new_tokens": 256, "temperature": 0.3, "top_p": 0.9, "n": 1},
    ),
    dict(
        kind="code", slug="code-docstrings", name="Add docstrings",
        description="The same code with a docstring added to each function (Python: placed without changing the code).",
        system_prompt="You are an expert programmer. You describe what a function does in one short sentence.",
        user_template="Write a one-sentence docstring for this {language} function. Reply with the sentence only.\n\n```\n{code}\n```",
        variables=[
            text("code", "Code", max_length=TEXT, multiline=True),
            text("language", "Language", required=False, max_length=30, default="python"),
        ],
        output_format="docstrings",
        default_params={"max_new_tokens": 512, "temperature": 0.2, "top_p": 0.9, "n": 1},
    ),
]  # fmt: skip


def create_defaults(apps, schema_editor):
    PromptTemplate = apps.get_model("generation", "PromptTemplate")
    TemplateVersion = apps.get_model("generation", "TemplateVersion")
    TemplateLabel = apps.get_model("generation", "TemplateLabel")
    for spec in TEMPLATES:
        spec = dict(spec)
        meta = {k: spec.pop(k) for k in ("kind", "slug", "name", "description")}
        template = PromptTemplate.objects.create(is_default=spec.pop("is_default", False), **meta)
        version = TemplateVersion.objects.create(template=template, number=1, note="Default template", model_alias="default", **spec)
        for label in ("production", "staging"):
            TemplateLabel.objects.create(template=template, name=label, version=version)


def remove_defaults(apps, schema_editor):
    apps.get_model("generation", "PromptTemplate").objects.filter(slug__in=[t["slug"] for t in TEMPLATES], jobs__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("generation", "0001_initial")]
    operations = [migrations.RunPython(create_defaults, remove_defaults)]
