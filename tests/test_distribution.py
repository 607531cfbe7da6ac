"""What the package index shows, and what the docs say about the command line, stay true.

These read the files of the sdist (README.md, pyproject.toml, noxfile.py, docs/), so
they run from a clone and from an unpacked sdist alike (``nox -s dist``).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

import anyws
from anyws._cli import BACKENDS, build_parser


if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib


ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def test_readme_links_are_absolute() -> None:
    """README.md is the project's page on the package index, where relative links break."""
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)]*)\)", readme)
    assert targets, "no links found: has the syntax changed?"
    assert [t for t in targets if not t.startswith("https://")] == []


def test_project_urls() -> None:
    urls = PROJECT["urls"]
    assert sorted(urls) == ["Changelog", "Documentation", "Homepage", "Source", "Tracker"]
    assert all(url.startswith("https://") for url in urls.values())
    assert urls["Tracker"] == urls["Source"] + "/issues"


def test_a_classifier_per_python_version() -> None:
    """The classifiers name each Python that the tests session runs on, and no other."""
    noxfile = (ROOT / "noxfile.py").read_text()
    match = re.search(r"^PYTHONS = \(([^)]*)\)$", noxfile, re.M)
    assert match is not None
    tested = re.findall(r'"(3\.\d+)"', match.group(1))
    classified = [
        c.rpartition(" :: ")[2]
        for c in PROJECT["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert classified == tested
    assert PROJECT["requires-python"] == f">={tested[0]}"


def test_version() -> None:
    assert PROJECT["dynamic"] == ["version"]
    attr = PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "anyws._version.__version__"
    assert anyws._version.__version__ == anyws.__version__


def test_console_script() -> None:
    assert PROJECT["scripts"] == {"anyws": "anyws._cli:main"}


def test_getting_started_describes_the_command_line() -> None:
    """Every option of the client and every backend appears in getting started."""
    page = (ROOT / "docs" / "getting-started.md").read_text()
    parser = build_parser("anyws")
    groups = {group.title: group for group in parser._action_groups}
    options = [
        option
        for action in groups["client options"]._group_actions
        for option in action.option_strings
    ]
    assert options
    assert [option for option in options if f"`{option}" not in page] == []
    shown = re.findall(r"`(?:--backend )?(\w+)`", page)
    assert [backend for backend in BACKENDS if backend not in shown] == []
    for line in ("Connection closed: 1000 (OK).", "Connection closed: 1001 (going away)."):
        assert line in page


@pytest.mark.parametrize("path", ["README.md", "docs/getting-started.md"])
def test_docs_show_the_console_script(path: str) -> None:
    assert "anyws demo" in (ROOT / path).read_text()


def test_release_workflow_uses_the_checked_cibuildwheel() -> None:
    """release.yml builds with the cibuildwheel whose configuration nox -s dist checks."""
    noxfile = (ROOT / "noxfile.py").read_text()
    checked = re.search(r'^CIBUILDWHEEL = "cibuildwheel==([^"]+)"$', noxfile, re.M)
    workflow = (ROOT / ".github" / "workflows" / "release.yml").read_text()
    used = re.findall(r"uses: pypa/cibuildwheel@v(\S+)", workflow)
    assert checked is not None
    assert used == [checked.group(1)]
