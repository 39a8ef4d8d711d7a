"""Rules of the codebase that keep the web process light and the engine reusable."""

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_web_process_never_imports_torch():
    code = (
        "import sys, django; django.setup();"
        "from django.test import Client; import aigc_site.urls, aigc_site.asgi, generation.tasks, generation.services;"
        "Client().get('/accounts/login/');"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="aigc_site.settings", DJANGO_DEBUG="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_the_engine_has_no_django_imports():
    for path in (ROOT / "generation" / "engine").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("django") for n in names), path
