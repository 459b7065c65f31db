"""The architecture's guardrails (docs/architecture.md), checked on every test run.

* the import contracts of pyproject.toml's `[tool.importlinter]` hold (`lint-imports`):
  common is a leaf, sip and db import nothing of the rooms above them, the layers
  dialer > scheduling > db | sip > common, the core imports no IO library, only db/
  imports SQLAlchemy;
* no module outside db/ imports SQLAlchemy, not even inside a function (an AST scan that
  does not depend on import-linter being installed);
* every Markdown file the code and the docs cite exists in this repository (a reader is
  never sent outside it);
* no source module grows past 600 lines unless its docstring says why (a `Size:` line).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: the project's packages (the rooms of docs/architecture.md)
PACKAGES = ("common", "dialer", "sip", "scheduling", "db")
#: what is scanned for citations of Markdown files
CITING_DIRS = (*PACKAGES, "tests", "bench", "scripts", "deploy", "docs", ".ci")
CITING_FILES = ("README.md", "pyproject.toml")
#: not text, or not ours
SKIP_DIRS = {"__pycache__", ".venv", "node_modules", ".git"}
SKIP_SUFFIXES = {".wav", ".pcap", ".png", ".jpg", ".svg", ".db", ".pyc", ".gz", ".zip"}

MAX_LINES = 600
SIZE_EXEMPT_DIRS = (REPO / "db" / "migrations",)

#: background material the project rewrote in its own words; never cite it (built so this
#: file does not cite them itself)
FOREIGN_DOCS = {"DESIGN" + ".md", "STYLE" + ".md"}
FOREIGN_PREFIXES = ("shared/", "/work/")

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_MD_PATH = re.compile(r"(?<![\w./-])((?:\.{1,2}/)?[\w.-]*(?:/[\w.-]+)*\.md)(?![\w/])")


def _files(top: Path, suffix: str | None = None) -> Iterator[Path]:
    for root, dirs, names in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(names):
            path = Path(root) / name
            if suffix is None or path.suffix == suffix:
                yield path


def _source_modules() -> Iterator[Path]:
    for package in PACKAGES:
        yield from _files(REPO / package, ".py")


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


# ---------------------------------------------------------------------------- import contracts
def _lint_imports() -> Path:
    exe = Path(sys.executable).parent / "lint-imports"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: install the test extra (pip install -e '.[test]')")
    return exe


def test_import_contracts_hold() -> None:
    """`lint-imports` with the contracts in pyproject.toml passes (no cache left behind)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [str(_lint_imports()), "--no-cache", "--no-logo"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, (
        "an import breaks the architecture (docs/architecture.md, pyproject.toml "
        f"[tool.importlinter]):\n{run.stdout}\n{run.stderr}"
    )


# ---------------------------------------------------------------------------- SQL stays in db/
def _imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module an `import` statement names, anywhere in the file (functions too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def sqlalchemy_imports_outside_db() -> list[str]:
    found = []
    for path in _source_modules():
        if path.is_relative_to(REPO / "db"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for lineno, module in sorted(_imported_modules(tree)):
            if module == "sqlalchemy" or module.startswith("sqlalchemy."):
                found.append(f"{_rel(path)}:{lineno}: import {module}")
    return found


def test_only_db_imports_sqlalchemy() -> None:
    """SQL lives in db/ (db.store, db.repositories ...); the other rooms call those."""
    found = sqlalchemy_imports_outside_db()
    assert not found, "SQLAlchemy imported outside db/ (move the query into db/):\n" + "\n".join(
        found
    )


# ---------------------------------------------------------------------------- cited docs exist
def _citing_files() -> Iterator[Path]:
    for name in CITING_FILES:
        if (REPO / name).is_file():
            yield REPO / name
    for top in CITING_DIRS:
        if (REPO / top).is_dir():
            for path in _files(REPO / top):
                if path.suffix not in SKIP_SUFFIXES:
                    yield path


def cited_markdown(text: str) -> set[str]:
    """The Markdown paths a text names (`docs/x.md`, `x.md`, `../x.md`), URLs left out."""
    return set(_MD_PATH.findall(_URL.sub(" ", text)))


def _resolves(cited: str, citing: Path) -> bool:
    if cited.startswith("/"):
        return False
    candidates = [citing.parent / cited, REPO / cited]
    if "/" not in cited:
        candidates.append(REPO / "docs" / cited)
    return any(c.resolve().is_relative_to(REPO) and c.is_file() for c in candidates)


def broken_citations() -> list[str]:
    bad = []
    for path in _citing_files():
        if path == Path(__file__).resolve():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for cited in sorted(cited_markdown(text)):
            name = cited.rsplit("/", 1)[-1]
            if name in FOREIGN_DOCS or cited.startswith(FOREIGN_PREFIXES):
                bad.append(f"{_rel(path)}: cites {cited}, which is not part of this project")
            elif not _resolves(cited, path):
                bad.append(f"{_rel(path)}: cites {cited}, which is not in the repository")
    return bad


def test_cited_markdown_files_exist() -> None:
    """A reader following a `docs/x.md` in a comment, docstring or page finds the file."""
    bad = broken_citations()
    assert not bad, "citations of Markdown files that are not here:\n" + "\n".join(bad)


def test_citation_pattern() -> None:
    """The scanner sees the forms the project uses, and ignores URLs."""
    text = (
        "see docs/compliance.md, (docs/architecture.md: x) [c](compliance.md) "
        "../README.md https://example.org/a/README.md notes/pacing.md "
        + "DESIGN" + ".md"
    )
    assert cited_markdown(text) == {
        "docs/compliance.md", "docs/architecture.md", "compliance.md", "../README.md",
        "notes/pacing.md", "DESIGN" + ".md",
    }


# ---------------------------------------------------------------------------- module size
def _has_size_reason(tree: ast.Module) -> bool:
    doc = ast.get_docstring(tree) or ""
    return any(line.strip().startswith("Size:") for line in doc.splitlines())


def oversized_modules() -> list[str]:
    big = []
    for path in _source_modules():
        if any(path.is_relative_to(d) for d in SIZE_EXEMPT_DIRS):
            continue
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_LINES and not _has_size_reason(ast.parse(text, filename=str(path))):
            big.append(f"{_rel(path)}: {lines} lines")
    return big


def test_no_module_over_600_lines_without_a_reason() -> None:
    """Split a module before it passes 600 lines, or say in its docstring (`Size: ...`) why
    it is one piece."""
    big = oversized_modules()
    assert not big, (
        f"modules over {MAX_LINES} lines with no 'Size:' line in their docstring:\n"
        + "\n".join(big)
    )
