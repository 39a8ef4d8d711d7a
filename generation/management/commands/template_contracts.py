"""How often the served model meets each default template's contract, on our own sample inputs.

    python manage.py template_contracts [--only SLUG ...] [--json]

Runs each sample through the same path a job takes (job_create, then job_run on this process's engine)
inside a transaction that is rolled back, so nothing is kept. Prints one row per template: samples met / run.
Generated code is run only in the sandbox (generation/sandbox), never beside the worker's keys.
"""

import json
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from generation import services
from generation.content import contracts
from generation.models import Job, JobStatus

NEWS = [
    "The city council voted on Tuesday to build a new bridge over the Elm River, at a cost of 40 million dollars. Construction starts next spring and should finish in 2028. Local businesses welcomed the decision, saying the old bridge caused daily traffic jams.",
    "A heatwave pushed temperatures above 40 degrees Celsius across southern Spain on Monday, forcing schools to close early and prompting health warnings for older people. Forecasters expect the heat to last until the weekend.",
    "The national football team beat Brazil 2-1 in a friendly match on Saturday night. Striker Ana Costa scored both goals in the second half in front of a sold-out crowd of 60,000 fans.",
    "Researchers at the university have developed a battery that charges in five minutes and lasts twice as long as current models. The team says the technology could reach electric cars within three years.",
    "The central bank raised interest rates by a quarter of a percentage point on Thursday, its third increase this year, citing stubborn inflation in food and energy prices. Economists expect one more rise before December.",
    "城市议会周二投票决定在榆树河上修建一座新桥，耗资四千万美元。工程将于明年春天开工，预计2028年完工。当地商家对这一决定表示欢迎。",
]

LONG_TEXT = (
    NEWS[0]
    + " "
    + (
        "The mayor said the project would create 300 jobs during construction. Critics argued the money should go to "
        "public transport instead, and a group of residents has asked for a review of the bridge's impact on the river's "
        "wildlife. The council promised to publish an environmental report before work begins."
    )
)

CODE_TASKS = [
    ("a function factorial(n) that returns the factorial of n", "assert factorial(0) == 1\nassert factorial(5) == 120"),
    (
        "a function is_palindrome(s) that returns True if the string s reads the same backwards",
        "assert is_palindrome('level')\nassert not is_palindrome('bridge')",
    ),
    ("a function add(a, b) that returns the sum of a and b", "assert add(2, 3) == 5\nassert add(-1, 1) == 0"),
    ("a function reverse_string(s) that returns the string s reversed", "assert reverse_string('abc') == 'cba'"),
    (
        "a function count_vowels(s) that returns how many vowels (a, e, i, o, u) are in the string s",
        "assert count_vowels('bridge') == 2\nassert count_vowels('xyz') == 0",
    ),
]

SNIPPETS = [
    ("def area(width, height):\n    return width * height\n", "assert area(2, 3) == 6", "area"),
    ("def greet(name):\n    return 'Hello, ' + name\n", "assert greet('Ana') == 'Hello, Ana'", "greet"),
    ("def is_even(n):\n    return n % 2 == 0\n", "assert is_even(4) and not is_even(3)", "even"),
    (
        "def celsius_to_fahrenheit(c):\n    return c * 9 / 5 + 32\n",
        "assert celsius_to_fahrenheit(100) == 212",
        "fahrenheit",
    ),
    ("def largest(numbers):\n    return max(numbers)\n", "assert largest([3, 9, 2]) == 9", "largest"),
]

TOPICS = [
    "the benefits of urban cycling",
    "how to start a vegetable garden",
    "why sleep matters for students",
    "the history of the printing press",
    "saving money on groceries",
]
PRODUCTS = [
    ("Acme electric kettle", "1.7 litres, boils in 3 minutes, auto shut-off"),
    ("Trailblazer hiking boots", "waterproof leather, grippy soles, lightweight"),
    ("Lumen desk lamp", "adjustable arm, warm and cool light, USB charging port"),
    ("Nimbus rain jacket", "breathable fabric, packs into its own pocket, reflective strips"),
    ("Brew Buddy coffee grinder", "ceramic burrs, 15 grind settings, quiet motor"),
]


def samples():
    """(template slug, inputs, params, check(outputs) -> problems)."""
    for text in NEWS[:5]:
        yield "headline", {"text": text}, {}, lambda o: contracts.check_headlines(o, 5)
        yield "seo-title", {"text": text}, {}, lambda o: contracts.check_headlines(o, 3)
    for text in [LONG_TEXT, *NEWS[1:5]]:
        yield "summary", {"text": text, "words": 30}, {}, lambda o, t=text: contracts.check_summary(o[0], t, 30)
        yield (
            "summary-bullets",
            {"text": text, "points": 3, "words": 40},
            {},
            lambda o, t=text: contracts.check_summary(o[0], t, 40),
        )
    for topic in TOPICS:
        yield "article", {"topic": topic, "words": 120}, {}, lambda o: contracts.check_length(o[0], 120)
        yield "blog-post", {"topic": topic, "words": 120}, {}, lambda o: contracts.check_length(o[0], 120)
        yield "social-post", {"topic": topic, "words": 30}, {}, lambda o: contracts.check_length(o[0], 30)
    for product, features in PRODUCTS:
        yield (
            "product-description",
            {"product": product, "features": features, "words": 60},
            {},
            lambda o: contracts.check_length(o[0], 60),
        )
    for instruction, test in CODE_TASKS:
        yield "code", {"instruction": instruction}, {}, lambda o, t=test: contracts.check_python(o[0], t)
    for code, test, term in SNIPPETS:
        yield (
            "code-explain",
            {"code": code, "words": 60},
            {},
            lambda o, term=term: contracts.check_explanation(o[0], 60, term),
        )
        yield (
            "code-docstrings",
            {"code": code},
            {},
            lambda o, t=test: contracts.check_python(o[0], t) + contracts.check_docstrings(o[0]),
        )


class Command(BaseCommand):
    help = "Measure how often the model meets each default template's contract on sample inputs."

    def add_arguments(self, parser):
        parser.add_argument("--only", nargs="*", help="Only these template slugs.")
        parser.add_argument("--json", action="store_true", dest="as_json")
        parser.add_argument("--verbose-failures", action="store_true")

    def handle(self, only, as_json, verbose_failures, **options):
        from generation.workers.engines import get_engine

        engine = get_engine()
        rows: dict[str, dict] = {}
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username="contracts")
            for slug, inputs, params, check in samples():
                if only and slug not in only:
                    continue
                row = rows.setdefault(slug, {"met": 0, "run": 0, "seconds": 0.0, "failures": []})
                started = time.monotonic()
                job = services.job_create(user=user, template=slug, inputs=inputs, params=params)
                services.job_run(job.pk, engine=engine)
                job = Job.objects.get(pk=job.pk)
                outputs = list(job.outputs.values_list("text", flat=True))
                problems = check(outputs) if job.status == JobStatus.SUCCEEDED else [f"job {job.status}: {job.error}"]
                row["run"] += 1
                row["met"] += not problems
                row["seconds"] += time.monotonic() - started
                if problems:
                    row["failures"].append({"inputs": inputs, "problems": problems, "outputs": outputs})
                    if verbose_failures:
                        self.stderr.write(f"{slug}: {problems}\n  {outputs}")
            transaction.set_rollback(True)
        if as_json:
            self.stdout.write(json.dumps({"model": engine.model_name, "templates": rows}, indent=2, ensure_ascii=False))
            return
        self.stdout.write(f"model: {engine.model_name}\n")
        self.stdout.write(f"{'template':<22}{'met':>5}{'run':>5}{'rate':>7}{'s/job':>8}")
        for slug, row in rows.items():
            rate = row["met"] / row["run"] if row["run"] else 0
            self.stdout.write(
                f"{slug:<22}{row['met']:>5}{row['run']:>5}{rate:>7.0%}{row['seconds'] / row['run']:>8.1f}"
            )
        total_met, total_run = sum(r["met"] for r in rows.values()), sum(r["run"] for r in rows.values())
        self.stdout.write(f"{'all':<22}{total_met:>5}{total_run:>5}{total_met / max(total_run, 1):>7.0%}")
