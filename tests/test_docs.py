"""The documentation builds and its examples run ("docs in CI").

* every ```python block of ``README.md`` and ``docs/*.md`` runs, top to bottom, in one fresh
  namespace per file (doctest-style), so examples cannot rot;
* every dotted ``lifted_idl.…`` name the pages mention exists;
* the API reference (``docs/api/*.rst``, rendered by Sphinx autodoc) documents every public
  module, begins with the estimators, and every page is in the site's table of contents
  (``.ci/run`` builds the site with warnings as errors);
* the README's set-up section holds exactly the two commands, the test one being the line that
  ``.ci/run`` runs.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
# pages whose examples are the point: each must keep some runnable code
MUST_HAVE_CODE = {"README.md": 1, "index.md": 1, "getting_started.md": 1, "user_guide.md": 8,
                  "theory.md": 2}
AUTOMODULE = re.compile(r"^\.\. automodule:: (\S+)[ \t]*$", re.M)


def code_blocks(path: Path) -> list[tuple[int, str]]:
    """``(line number, source)`` of each ```python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text[:m.start()].count("\n") + 2, m.group(1)) for m in BLOCK.finditer(text)]


def test_pages_exist_and_keep_their_examples():
    names = {p.name for p in PAGES}
    assert {"README.md", "index.md", "getting_started.md", "user_guide.md", "theory.md",
            "examples.md"} <= names
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


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_named_objects_exist(path):
    refs = _references(path.read_text(encoding="utf-8"))
    missing = []
    for ref in sorted(refs):
        try:
            _resolve(ref)
        except (ImportError, AttributeError):
            missing.append(ref)
    assert not missing, f"{path.name} names objects that do not exist: {missing}"


def public_modules() -> set[str]:
    """``lifted_idl`` and its submodules with no path component starting with ``_``."""
    import lifted_idl

    names = {"lifted_idl"}
    for info in pkgutil.walk_packages(lifted_idl.__path__, "lifted_idl."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.add(info.name)
    return names


def _toctree(text: str) -> list[str]:
    """The entries of the first toctree of a reST (indented) or MyST (fenced) page, in order."""
    m = (re.search(r"^```\{toctree\}[ \t]*\n(.*?)^```", text, re.S | re.M)
         or re.search(r"^\.\. toctree::[ \t]*\n((?:[ \t]+.*\n|[ \t]*\n)*)", text, re.M))
    assert m, "no toctree"
    return [line.strip() for line in m.group(1).splitlines()
            if line.strip() and not line.strip().startswith(":")]


def test_api_reference_documents_every_public_module():
    api = DOCS / "api"
    documented = {}
    for page in sorted(api.glob("*.rst")):
        for name in AUTOMODULE.findall(page.read_text(encoding="utf-8")):
            assert name not in documented, f"{name} documented twice"
            documented[name] = page.name
    for name in documented:
        importlib.import_module(name)  # a stale entry would fail the site build
    missing = sorted(public_modules() - set(documented))
    assert not missing, (f"public modules with no API page: {missing}; add "
                         "'.. automodule:: NAME' to a page of docs/api/")
    # each class or function the package exports is rendered by some documented module that
    # lists it in its __all__ (autodoc's :members: follows __all__), not only by the package
    import lifted_idl

    modules = [importlib.import_module(n) for n in documented if n != "lifted_idl"]
    for name in lifted_idl.__all__:
        obj = getattr(lifted_idl, name)
        if callable(obj):
            assert any(name in getattr(m, "__all__", ()) and getattr(m, name) is obj
                       for m in modules), f"lifted_idl.{name} is on no API page"
    # every API page is reachable, and the reference begins with the estimators
    pages = _toctree((api / "index.rst").read_text(encoding="utf-8"))
    assert sorted(pages) == sorted(p.stem for p in api.glob("*.rst") if p.stem != "index")
    assert pages[0] == "estimators" and documented["lifted_idl.estimators"] == "estimators.rst"


def test_every_page_is_in_the_site():
    tree = _toctree((DOCS / "index.md").read_text(encoding="utf-8"))
    pages = sorted(p.stem for p in DOCS.glob("*.md") if p.stem != "index")
    assert sorted(t for t in tree if "/" not in t) == pages
    assert "api/index" in tree


def test_examples_show_every_committed_figure():
    text = (DOCS / "examples.md").read_text(encoding="utf-8")
    shown = re.findall(r"!\[[^\]]*\]\(\.\./experiments/results/([^)]+\.png)\)", text)
    figures = sorted(p.name for p in (ROOT / "experiments" / "results").glob("*.png"))
    assert sorted(shown) == figures
    for name in shown:  # each figure comes with the script that draws it
        assert (ROOT / "experiments" / name.replace(".png", ".py")).exists(), name


def test_readme_setup_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)
    commands = [c.strip() for c in commands]
    assert commands == ["pip install -e . && lifted-idl fit",
                        'pip install -e ".[test]" && python -m pytest -q']
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert commands[1] in [line.strip() for line in ci]


def _sources():
    for folder in ("lifted_idl", "docs", "experiments", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".md", ".rst") and "results" not in path.parts:
                yield path


def test_theory_citations_name_sections_of_docs_theory():
    """Every "theory §N" cites a numbered section of the repository's docs/theory.md."""
    theory = (DOCS / "theory.md").read_text(encoding="utf-8")
    sections = {int(n) for n in re.findall(r"^## (\d+)\. ", theory, re.M)}
    assert sections == set(range(1, max(sections) + 1))
    cite = re.compile(r"theory(?:\.md)? §(\d+)((?:(?:[,;]? ?(?:and|or)? ?|[–-])§\d+)*)")
    bad = []
    for path in _sources():
        for m in cite.finditer(path.read_text(encoding="utf-8")):
            numbers = [int(m.group(1))] + [int(k) for k in re.findall(r"§(\d+)", m.group(2))]
            bad += [f"{path.relative_to(ROOT)}: §{k}" for k in numbers if k not in sections]
    assert not bad, bad


def test_package_and_docs_point_nowhere_outside_the_repository():
    bad = [str(p.relative_to(ROOT)) for p in _sources()
           if p.parts[len(ROOT.parts)] in ("lifted_idl", "docs")
           and "shared/" in p.read_text(encoding="utf-8")]
    assert not bad, bad
