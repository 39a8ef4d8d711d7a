"""The Chinese interface is complete: every string the studio marks for translation has a Chinese translation in
locale/zh_Hans, and the catalog the site loads (django.mo) is the one compiled from it. A new string added without
its translation, a fuzzy guess left by makemessages, or a .po edited without compilemessages fails here.

makemessages runs on a copy of the sources, so the repository's files are never rewritten by a test run."""

from __future__ import annotations

import gettext
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import translation

LOCALE = "zh_Hans"
CATALOG = Path(settings.BASE_DIR) / "locale" / LOCALE / "LC_MESSAGES"
# Top-level entries that hold no studio strings (installed packages, run-time data, the tests themselves);
# dot-directories (.venv, .git) are skipped by makemessages anyway. The same list serves a manual run:
# `manage.py makemessages -l zh_Hans --ignore=node_modules --ignore=var --ignore=tests --ignore=docs`.
NOT_STUDIO = {"node_modules", "var", "tests", "docs"}
GETTEXT_TOOLS = ("xgettext", "msgmerge", "msgattrib", "msgfmt")


@pytest.fixture(scope="module")
def gettext_tools():
    missing = [tool for tool in GETTEXT_TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `make gettext` (or `make test`).")


def msgids(po: Path, *attrib_args: str) -> list[str]:
    """The msgids msgattrib selects (--untranslated, --only-fuzzy), header left out."""
    out = subprocess.run(
        ["msgattrib", "--no-wrap", *attrib_args, str(po)], check=True, capture_output=True, text=True
    ).stdout
    return [m for m in re.findall(r'^msgid "(.*)"$', out, flags=re.MULTILINE) if m]


def test_every_studio_string_has_a_chinese_translation(gettext_tools, tmp_path, monkeypatch, settings):
    root = Path(settings.BASE_DIR)
    for entry in root.iterdir():
        if entry.name.startswith(".") or entry.name in NOT_STUDIO:
            continue
        if entry.is_dir():
            shutil.copytree(entry, tmp_path / entry.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(entry, tmp_path / entry.name)
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    monkeypatch.chdir(tmp_path)
    call_command("makemessages", locale=[LOCALE], verbosity=0)

    po = tmp_path / "locale" / LOCALE / "LC_MESSAGES" / "django.po"
    untranslated, fuzzy = msgids(po, "--untranslated"), msgids(po, "--only-fuzzy")
    assert (untranslated, fuzzy) == ([], []), (
        f"Translate these in {CATALOG / 'django.po'} (run makemessages first, then compilemessages):\n"
        + "\n".join([f"untranslated: {m}" for m in untranslated] + [f"fuzzy: {m}" for m in fuzzy])
    )


def test_the_compiled_catalog_is_the_po_with_its_placeholders_intact(gettext_tools, tmp_path):
    """msgfmt --check-format (as compilemessages runs it) refuses a translation that drops or renames a
    %(name)s placeholder; the .mo the site loads must hold exactly what the .po says."""
    fresh = tmp_path / "django.mo"
    subprocess.run(
        ["msgfmt", "--check-format", "-o", str(fresh), str(CATALOG / "django.po")], check=True, capture_output=True
    )
    with fresh.open("rb") as a, (CATALOG / "django.mo").open("rb") as b:
        compiled, shipped = gettext.GNUTranslations(a)._catalog, gettext.GNUTranslations(b)._catalog
    stale = sorted(str(k) for k in compiled.keys() ^ shipped.keys())
    stale += sorted(str(k) for k in compiled.keys() & shipped.keys() if compiled[k] != shipped[k])
    assert not stale, "django.mo is older than django.po: run `manage.py compilemessages -l zh_Hans`\n" + "\n".join(
        stale
    )


def test_an_english_word_count_is_not_labelled_in_characters():
    """字 counts Chinese characters; a count of English words reads 词 in the Chinese interface."""
    with translation.override("zh-hans"):
        label = translation.ngettext("%(n)s word", "%(n)s words", 12) % {"n": 12}
    assert label == "12 词"
