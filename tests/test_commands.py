import io
import os
import stat

import pytest
from django.core.management import CommandError, call_command

from generation import services

pytestmark = pytest.mark.django_db


def test_create_api_key_prints_the_key_alone_on_the_last_line(user):
    out = io.StringIO()
    call_command("create_api_key", "editor", "--name", "cms", stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip().splitlines()[-1]
    assert key.startswith("aigc_") and " " not in key
    assert services.api_key_authenticate(key).user == user


def test_create_api_key_for_an_unknown_user():
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_key", "ghost")


def test_ensure_user_creates_once_and_keeps_the_password(tmp_path, django_user_model):
    pw_file = tmp_path / "pw.txt"
    call_command("ensure_user", "admin", password_file=str(pw_file), stdout=io.StringIO())
    call_command("ensure_user", "admin", password_file=str(pw_file), stdout=io.StringIO())
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(pw_file.read_text().strip())


def test_ensure_user_prints_the_password_once_and_keeps_it_0600(tmp_path, django_user_model):
    """Whatever the umask, the file is never readable by others, not even for a moment (created 0600); later
    runs say where it is without printing it; a file an older version left 0644 is narrowed."""
    pw_file = tmp_path / "admin-password.txt"
    old_umask = os.umask(0)
    try:
        first, second = io.StringIO(), io.StringIO()
        call_command("ensure_user", "admin", password_file=str(pw_file), stdout=first)
        password = pw_file.read_text().strip()
        assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
        assert password in first.getvalue()
        pw_file.chmod(0o644)
        call_command("ensure_user", "admin", password_file=str(pw_file), stdout=second)
    finally:
        os.umask(old_umask)
    assert password not in second.getvalue() and str(pw_file) in second.getvalue()
    assert stat.S_IMODE(pw_file.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["admin-password.txt"]  # no temporary file left beside it
    quiet = io.StringIO()
    call_command("ensure_user", "admin", stdout=quiet)
    assert "exists" in quiet.getvalue() and password not in quiet.getvalue()


def test_export_then_import_templates_through_files(tmp_path, user):
    from generation.models import PromptTemplate

    path = tmp_path / "templates.json"
    call_command("export_templates", "headline", "summary", output=str(path), stderr=io.StringIO())
    data = path.read_text()
    assert '"slug": "headline"' in data and '"labels"' in data and '"versions"' in data
    PromptTemplate.objects.filter(slug="headline").delete()
    out = io.StringIO()
    call_command("import_templates", str(path), stdout=out)
    assert out.getvalue().strip() == "Imported 1 templates, 1 versions, moved 2 labels."
    assert services.resolve_version(PromptTemplate.objects.get(slug="headline")).number == 1


def test_import_of_a_bad_file_is_an_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"format": 99}')
    with pytest.raises(CommandError, match="Not a template export"):
        call_command("import_templates", str(path))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_templates", str(tmp_path / "missing.json"))


# Right and wrong answers to template_contracts' code tasks, in its order.
CODE_ANSWERS = [
    ("def factorial(n):\n    return 1 if n < 2 else n * factorial(n - 1)", "def factorial(n):\n    return n"),
    ("def is_palindrome(s):\n    return s == s[::-1]", "def is_palindrome(s):\n    return True"),
    ("def add(a, b):\n    return a + b", "def add(a, b):\n    return a * b"),
    ("def reverse_string(s):\n    return s[::-1]", "def reverse_string(s):\n    return s"),
    (
        "def count_vowels(s):\n    return sum(c in 'aeiou' for c in s)",
        "def count_vowels(s):\n    return len(s)",
    ),
]


def test_the_held_out_code_cases_judge_in_the_sandbox_as_they_did_bare(sandbox_config):
    """Moving code checks into the sandbox changes no verdict: every code case of template_contracts passes with
    a right answer and fails with a wrong one (its snippets: the snippet passes, a broken copy fails)."""
    from generation.content import contracts
    from generation.management.commands import template_contracts as cases

    assert len(CODE_ANSWERS) == len(cases.CODE_TASKS)
    for (_, test), (right, wrong) in zip(cases.CODE_TASKS, CODE_ANSWERS, strict=True):
        assert contracts.check_python(right, test) == [], test
        assert contracts.check_python(wrong, test) == ["check failed: AssertionError"], test
    for code, test, _ in cases.SNIPPETS:
        assert contracts.check_python(code, test) == [], test
        broken = code.replace("return ", "return None and ", 1)
        assert contracts.check_python(broken, test)[0].startswith("check failed"), test
