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
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            assert not any(n.startswith("django") for n in names), path


# Nothing of the app, nor Django: what the engine and the sandbox never import.
NO_APP = (
    "django",
    "generation.models",
    "generation.services",
    "generation.selectors",
    "generation.infra",
    "generation.web",
    "generation.api",
    "generation.tasks",
    "generation.workers",
    "generation.content",
)
# What each layer of generation/ may never import (lazy imports inside functions included). The arrows point
# down: web and api over services and selectors, services over content, infra and the engine; the worker layer
# (tasks, workers) hands services what a worker process holds, never the other way.
FORBIDDEN = {
    # Content runs no process of its own: code nobody reviewed reaches a process only through generation.sandbox.
    "generation.content": ("subprocess", "multiprocessing", *(m for m in NO_APP if m != "generation.content")),
    # The sandbox stands alone: content's code checks use it, and nothing of the project reaches into it.
    "generation.sandbox": (*NO_APP, "generation.engine"),
    "generation.engine": NO_APP,
    "generation.infra": (
        "generation.services",
        "generation.selectors",
        "generation.web",
        "generation.api",
        "generation.tasks",
        "generation.workers",
    ),
    "generation.selectors": (
        "generation.services",
        "generation.web",
        "generation.api",
        "generation.tasks",
        "generation.workers",
    ),
    "generation.services": ("generation.web", "generation.api", "generation.tasks", "generation.workers"),
    "generation.web": ("generation.api", "generation.tasks", "generation.workers"),
    "generation.api": ("generation.web", "generation.tasks", "generation.workers"),
    "generation.workers": ("generation.web", "generation.api", "generation.services", "generation.tasks"),
}


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a module, relative ones resolved."""
    module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, node.module] if node.module else base)
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]  # `from .. import services`
    return found


def _against_the_layering(root: Path) -> list[str]:
    broken = []
    for layer, forbidden in FORBIDDEN.items():
        for path in sorted((root / layer.replace(".", "/")).rglob("*.py")):
            for line, target in _imports(path, root):
                if any(target == f or target.startswith(f + ".") for f in forbidden):
                    broken.append(f"{path.relative_to(root)}:{line} imports {target}")
    return broken


def test_each_layer_imports_only_downward():
    broken = _against_the_layering(ROOT)
    assert not broken, "imports against the layering:\n" + "\n".join(broken)


def test_the_layering_rule_catches_what_it_forbids(tmp_path):
    """The rule itself can fail: a service importing the task layer lazily, content importing Django."""
    (tmp_path / "generation" / "services").mkdir(parents=True)
    (tmp_path / "generation" / "content").mkdir()
    (tmp_path / "generation" / "services" / "probe.py").write_text("def f():\n    from ..tasks import run_job\n")
    (tmp_path / "generation" / "content" / "probe.py").write_text("from django.conf import settings\n")
    assert _against_the_layering(tmp_path) == [
        "generation/content/probe.py:1 imports django.conf",
        "generation/content/probe.py:1 imports django.conf.settings",
        "generation/services/probe.py:2 imports generation.tasks",
        "generation/services/probe.py:2 imports generation.tasks.run_job",
    ]
