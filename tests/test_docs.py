"""The documentation builds and its examples run ("docs in CI").

* every ```python block of ``README.md`` and ``docs/*.md`` runs, top to bottom, in one fresh
  namespace per file (doctest-style), so examples cannot rot;
* every dotted ``lifted_idl.…`` name the pages mention exists;
* ``docs/api.md`` equals what ``docs/build_api.py`` generates from the current docstrings;
* the README's set-up section holds exactly the two commands, the test one being the line that
  ``.ci/run`` runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
# pages whose examples are the point: each must keep some runnable code
MUST_HAVE_CODE = {"README.md": 1, "index.md": 1, "user_guide.md": 8, "theory.md": 2}


def code_blocks(path: Path) -> list[tuple[int, str]]:
    """``(line number, source)`` of each ```python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 2, m.group(1)) for m in BLOCK.finditer(text)]


def test_pages_exist_and_keep_their_examples():
    names = {p.name for p in PAGES}
    assert {"README.md", "index.md", "user_guide.md", "theory.md", "api.md"} <= names
    for name, least in MUST_HAVE_CODE.items():
        path = ROOT / name if name == "README.md" else DOCS / name
        assert len(code_blocks(path)) >= least, f"{name} lost its Python examples"


@pytest.mark.parametrize("path", [p for p in PAGES if code_blocks(p)],
                         ids=lambda p: p.name)
def test_code_blocks_run(path, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace = {"__name__": f"docs_{path.stem}"}
    for line, source in code_blocks(path):
        code = compile(source, f"{path.relative_to(ROOT)}:{line}", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation is the point


def _references(text: str) -> set[str]:
    return set(re.findall(r"`(lifted_idl(?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text))


def _resolve(dotted: str):
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:k]))
        except ImportError:
            continue
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)


@pytest.mark.parametrize("path", [p for p in PAGES if p.name != "api.md"],
                         ids=lambda p: p.name)
def test_named_objects_exist(path):
    refs = _references(path.read_text(encoding="utf-8"))
    missing = []
    for ref in sorted(refs):
        try:
            _resolve(ref)
        except (ImportError, AttributeError):
            missing.append(ref)
    assert not missing, f"{path.name} names objects that do not exist: {missing}"


def test_api_md_is_up_to_date():
    spec = importlib.util.spec_from_file_location("build_api", DOCS / "build_api.py")
    build_api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_api)
    expected = build_api.render()
    current = (DOCS / "api.md").read_text(encoding="utf-8")
    assert current == expected, "docs/api.md is out of date: run python docs/build_api.py"
    # the reference covers every public name of the top-level package
    import lifted_idl

    for name in lifted_idl.__all__:
        assert f"`{name}`" in current or f".{name}`" in current, name


def test_readme_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)
    commands = [c.strip() for c in commands]
    assert commands == ["pip install -e . && lifted-idl fit",
                        'pip install -e ".[test]" && python -m pytest -q']
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in [line.strip() for line in ci]
