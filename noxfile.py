"""Developer and CI tasks. ``nox`` runs tests, lint and typecheck; ``nox -l`` lists all.

Sessions:

- ``tests``: the suite on every CPython from 3.10 to 3.13 that this machine has (see
  `find_pythons`); a missing version is skipped, but no version at all is an error.
  Extra arguments go to pytest: ``nox -s tests -- -k frames -x``.
- ``tests_no_speedups``: the suite with ``ANYWS_NO_SPEEDUPS=1`` (pure-Python masking).
- ``tests_asyncio_only``: the suite without trio installed; trio tests must skip.
- ``lint``: ``ruff check`` and ``ruff format --check``.
- ``typecheck``: ``mypy --strict`` on ``anyws/``, ``examples/`` and this file.
- ``docs``: the Sphinx site into ``docs/_build/html``, with warnings as errors.
- ``dist``: builds the sdist, the pure-Python wheel and this platform's wheel into
  ``dist/``, checks them (``twine check --strict``, their contents, cibuildwheel's
  configuration), and runs the tests against each one installed in a fresh virtual
  environment: the whole suite against the platform wheel, a smoke subset against the
  others (see `dist`).
- ``bench``: ``python -m benchmarks.core``, then ``python -m benchmarks.e2e`` (not run
  by default). ``nox -s bench -- e2e --quick`` runs one of them, with those arguments.
- ``autobahn``: the Autobahn Testsuite against the anyws server and client, on asyncio
  and trio (not run by default; see compliance/README.md). Extra arguments go to
  ``compliance/run.py``: ``nox -s autobahn -- --backend trio --cases '6.*'``.

Each session installs the dependency groups of pyproject.toml that it needs and, but for
lint, anyws itself, editable: setuptools then builds the optional C extension
``anyws.sansio._speedups`` in place (one file per Python version). With ``CI`` set, the
build must produce it (``ANYWS_REQUIRE_EXTENSION=1``, read by setup.py) rather than fall
back silently to pure Python.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox
from packaging.requirements import Requirement


nox.needs_version = ">=2025.2.9"  # nox.project.dependency_groups
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "typecheck"]
# With CI set, nox would turn a missing interpreter into an error: these machines don't
# all have every version, and the tests session checks that at least one ran.
nox.options.error_on_missing_interpreters = False
if hasattr(nox.options, "download_python"):
    # Never fetch a standalone Python build: only PyPI is reachable from CI.
    nox.options.download_python = "never"

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
IN_CI = bool(os.environ.get("CI"))


def _version_of(executable: str) -> str | None:
    """Return "X.Y" for a working CPython ``executable``, or None (pyenv shims can fail)."""
    try:
        result = subprocess.run(
            [
                executable,
                "-c",
                "import platform, sys; "
                "print(platform.python_implementation(), '%d.%d' % sys.version_info[:2])",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    implementation, _, version = result.stdout.strip().partition(" ")
    return version if result.returncode == 0 and implementation == "CPython" else None


def _pyenv_candidates(version: str) -> list[Path]:
    """Interpreters for ``version`` that pyenv has installed, newest patch first."""
    candidates: list[Path] = []
    pyenv = shutil.which("pyenv")
    if pyenv is not None:
        result = subprocess.run(
            [pyenv, "prefix", version], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates += [Path(p) / "bin" / f"python{version}" for p in result.stdout.split(":")]
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    pattern = re.compile(rf"{re.escape(version)}\.(\d+)")  # CPython X.Y.Z only, not X.Y.Zt
    found: list[tuple[int, Path]] = []
    if root.is_dir():
        matches = ((pattern.fullmatch(d.name), d) for d in root.iterdir())
        found += [(int(m.group(1)), d / "bin" / f"python{version}") for m, d in matches if m]
    candidates += [path for _, path in sorted(found, reverse=True)]
    return [path for path in candidates if path.is_file()]


def find_pythons() -> dict[str, str]:
    """Find each Python of `PYTHONS` and make it findable by nox as ``pythonX.Y``.

    Only one Python may be on ``PATH`` (on these machines, pyenv's global 3.11), and
    pyenv's shims for the others exist but fail. So for each version: keep a working
    ``pythonX.Y`` from ``PATH``; else ask ``pyenv prefix X.Y``; else look through
    ``$PYENV_ROOT/versions`` (default ``~/.pyenv/versions``). The bin directory of each
    interpreter found that way goes to the front of ``PATH`` before nox resolves
    interpreters, which happens after this file is loaded. Returns version -> path.
    """
    found: dict[str, str] = {}
    prepend: list[str] = []
    for version in PYTHONS:
        on_path = shutil.which(f"python{version}")
        if on_path is not None and _version_of(on_path) == version:
            found[version] = on_path
            continue
        for candidate in _pyenv_candidates(version):
            if _version_of(str(candidate)) == version:
                found[version] = str(candidate)
                prepend.append(str(candidate.parent))
                break
    if prepend:
        os.environ["PATH"] = os.pathsep.join([*prepend, os.environ.get("PATH", "")])
    return found


FOUND_PYTHONS = find_pythons()
#: The Python of the single-version sessions: the newest one found (else nox's own).
ONE_PYTHON = list(FOUND_PYTHONS)[-1] if FOUND_PYTHONS else None


def _requirements(*groups: str, without: tuple[str, ...] = ()) -> list[str]:
    """The requirements of pyproject.toml's dependency ``groups``, minus ``without``."""
    return [
        requirement
        for requirement in nox.project.dependency_groups(PYPROJECT, *groups)
        if Requirement(requirement).name not in without
    ]


def _install_anyws(session: nox.Session, *requirements: str) -> None:
    """Install anyws (editable) with ``requirements`` in one resolver run.

    The editable build runs setup.py, which compiles the C extension into the source
    tree (one file per Python version, so the sessions don't collide).
    """
    args = ["-e", ".", *requirements]
    if session.venv_backend == "uv":
        # uv would otherwise keep an earlier build of the local package (and the C
        # extension with it) in a reused environment.
        args += ["--reinstall-package", "anyws"]
    env = {"ANYWS_REQUIRE_EXTENSION": "1"} if IN_CI else {}
    session.install(*args, env=env)


def _report_extension(session: nox.Session) -> None:
    """Say which masking implementation this environment has; in CI, require the C one."""
    if not (ROOT / "anyws" / "sansio" / "_speedups.c").exists():
        return  # no extension in this version of the tree
    output = session.run(
        "python",
        "-c",
        "try:\n"
        "    import anyws.sansio._speedups as module\n"
        "except ImportError as exc:\n"
        "    print('missing:', exc)\n"
        "else:\n"
        "    print(module.__file__)",
        silent=True,
    )
    result = str(output).strip()
    if not result.startswith("missing:"):
        session.log(f"C extension built: {result}")
    elif IN_CI:
        session.error(f"the C extension anyws.sansio._speedups isn't importable ({result})")
    else:
        session.warn(f"the tests run on the pure-Python masking path only ({result})")


def _pytest(session: nox.Session, *, backends: str, env: dict[str, str] | None = None) -> None:
    # The pytest script, not ``python -m pytest``: the latter puts the working directory
    # on sys.path, and the tests must import the installed anyws (here the editable one).
    session.run(
        "pytest",
        *session.posargs,
        env={"ANYWS_TESTS_REQUIRE_BACKENDS": backends, **(env or {})},
    )


ALL_BACKENDS = "asyncio,asyncio+uvloop,trio" if sys.platform != "win32" else "asyncio,trio"
ASYNCIO_BACKENDS = "asyncio,asyncio+uvloop" if sys.platform != "win32" else "asyncio"


@nox.session(python=list(PYTHONS) if FOUND_PYTHONS else False)
def tests(session: nox.Session) -> None:
    """Run the test suite on each Python of the matrix that this machine has."""
    if not FOUND_PYTHONS:
        session.error(
            f"no Python {PYTHONS[0]} to {PYTHONS[-1]} found on PATH, through `pyenv prefix` "
            "or under $PYENV_ROOT/versions: install one (e.g. `pyenv install 3.12`)"
        )
    missing = [version for version in PYTHONS if version not in FOUND_PYTHONS]
    session.log(
        f"Pythons found: {', '.join(FOUND_PYTHONS)}"
        + (f"; not found, so skipped: {', '.join(missing)}" if missing else "")
    )
    _install_anyws(session, *_requirements("test"))
    _report_extension(session)
    _pytest(session, backends=ALL_BACKENDS)


@nox.session(python=ONE_PYTHON)
def tests_no_speedups(session: nox.Session) -> None:
    """Run the test suite on the pure-Python masking path (``ANYWS_NO_SPEEDUPS=1``)."""
    _install_anyws(session, *_requirements("test"))
    _pytest(session, backends=ALL_BACKENDS, env={"ANYWS_NO_SPEEDUPS": "1"})


@nox.session(python=ONE_PYTHON)
def tests_asyncio_only(session: nox.Session) -> None:
    """Run the test suite without trio: what needs trio must skip, the rest must pass."""
    _install_anyws(session, *_requirements("test", without=("trio", "trio-websocket")))
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; "
        "sys.exit('trio is installed' if importlib.util.find_spec('trio') else 0)",
    )
    _pytest(session, backends=ASYNCIO_BACKENDS)


@nox.session(python=ONE_PYTHON)
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff (``nox -s lint -- --fix`` to fix)."""
    session.install(*_requirements("lint"))
    session.run("ruff", "check", *session.posargs, ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=ONE_PYTHON)
def typecheck(session: nox.Session) -> None:
    """Type-check anyws, the examples and this noxfile with mypy --strict.

    Settings are in pyproject.toml. The examples are checked as users would write
    them: they are what the docs show.
    """
    _install_anyws(session, *_requirements("typecheck"))
    if session.posargs:
        session.run("mypy", *session.posargs)
        return
    session.run("mypy", "anyws", "noxfile.py")
    session.run("mypy", "--explicit-package-bases", "examples")


@nox.session(python=ONE_PYTHON)
def docs(session: nox.Session) -> None:
    """Build the HTML docs into docs/_build/html; any warning fails (see docs/README.md).

    Every page is read again (``-E``), so that a warning shows on every run, not only
    on the run after the change that caused it. Extra arguments go to sphinx-build.
    """
    _install_anyws(session, *_requirements("docs"))
    session.run("python", "docs/_inventories/build.py", "--check")
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-n",
        "-E",
        "-b",
        "html",
        *session.posargs,
        "docs",
        "docs/_build/html",
    )
    session.log(f"built {ROOT / 'docs' / '_build' / 'html' / 'index.html'}")


#: What `dist` runs against the pure-Python wheel and the sdist: masking (the path each
#: one has), the public names, the layering, the metadata, and the CLI with its console
#: script, on every backend. That proves each artifact complete and installable; the
#: code they share with the platform wheel gets the whole suite there, and the pure
#: masking path gets it in ``tests_no_speedups``.
DIST_SMOKE_TESTS = (
    "tests/sansio/test_mask.py",
    "tests/test_exports.py",
    "tests/test_layering.py",
    "tests/test_distribution.py",
    "tests/test_main.py",
    "tests/test_main_terminal.py",
)


#: The cibuildwheel that checks the configuration here and builds the wheels in
#: .github/workflows/release.yml (tests/test_distribution.py keeps the two equal).
CIBUILDWHEEL = "cibuildwheel==4.3.5"


def _one(directory: Path, pattern: str) -> Path:
    found = sorted(directory.glob(pattern))
    if len(found) != 1:
        raise RuntimeError(f"expected one {pattern} in {directory}, found {found}")
    return found[0]


def _check_contents(session: nox.Session, sdist: Path, pure: Path, platform: Path) -> None:
    """Check what each artifact holds, beyond what twine checks."""
    import tarfile
    import zipfile

    with tarfile.open(sdist) as archive:
        top = sdist.name.removesuffix(".tar.gz")
        names = {name.removeprefix(f"{top}/") for name in archive.getnames()}
    required = {
        "pyproject.toml",
        "setup.py",
        "README.md",
        "LICENSE",
        "anyws/sansio/_speedups.c",
        "tests/conftest.py",
        "tests/sansio/__init__.py",
        "examples/README.md",
        "docs/conf.py",
    }
    if missing := sorted(required - names):
        session.error(f"{sdist.name} lacks {', '.join(missing)}")
    if built := sorted(name for name in names if name.endswith((".so", ".pyd", ".pyc"))):
        session.error(f"{sdist.name} holds build products: {', '.join(built)}")
    for wheel, compiled in ((pure, False), (platform, True)):
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            entry_points = next(
                archive.read(name).decode() for name in names if name.endswith("entry_points.txt")
            )
        has_extension = any(
            n.startswith("anyws/sansio/_speedups.") and n.endswith((".so", ".pyd")) for n in names
        )
        if has_extension != compiled:
            session.error(f"{wheel.name}: has the C extension: {has_extension}, not {compiled}")
        if sources := sorted(n for n in names if n.endswith(".c")):
            session.error(f"{wheel.name} holds C sources: {', '.join(sources)}")
        if "anyws = anyws._cli:main" not in entry_points:
            session.error(f"{wheel.name} has no anyws console script")
        if "anyws/py.typed" not in names:
            session.error(f"{wheel.name} lacks anyws/py.typed")


@nox.session(python=ONE_PYTHON)
def dist(session: nox.Session) -> None:
    """Build the sdist and wheels into dist/, check them, and test each one installed.

    Builds the sdist, then from it (as pip and cibuildwheel do) a pure-Python
    ``py3-none-any`` wheel (``ANYWS_NO_EXTENSION=1``) and this platform's wheel with
    the C extension (``ANYWS_REQUIRE_EXTENSION=1``; the manylinux, musllinux, macOS
    and Windows ones are cibuildwheel's, in .github/workflows/release.yml). Checks
    them with ``twine check --strict`` and their contents, and cibuildwheel's
    configuration. Then installs each into a fresh virtual environment and runs the
    tests of the unpacked sdist, its ``anyws/`` removed, against the installed
    package, on every backend: the whole suite against the platform wheel,
    `DIST_SMOKE_TESTS` against the others (what differs between them is how they are
    built, not the code). Extra arguments go to each pytest run.
    """
    session.install("uv", "twine", CIBUILDWHEEL)
    out = ROOT / "dist"
    shutil.rmtree(out, ignore_errors=True)
    work = Path(session.create_tmp()).resolve() / "dist"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    session.run("uv", "build", "--quiet", "--sdist", "--out-dir", str(out), str(ROOT))
    sdist = _one(out, "anyws-*.tar.gz")
    pure_dir, platform_dir = work / "pure", work / "platform"
    session.run(
        "uv",
        "build",
        "--quiet",
        "--wheel",
        "--out-dir",
        str(pure_dir),
        str(sdist),
        env={"ANYWS_NO_EXTENSION": "1"},
    )
    session.run(
        "uv",
        "build",
        "--quiet",
        "--wheel",
        "--out-dir",
        str(platform_dir),
        str(sdist),
        env={"ANYWS_REQUIRE_EXTENSION": "1"},
    )
    pure = Path(shutil.copy(_one(pure_dir, "anyws-*-py3-none-any.whl"), out))
    platform = Path(shutil.copy(_one(platform_dir, "anyws-*-cp3*-cp3*-*.whl"), out))
    session.run("twine", "check", "--strict", str(sdist), str(pure), str(platform))
    _check_contents(session, sdist, pure, platform)
    for target in ("linux", "macos", "windows"):
        # Prints the wheels that cibuildwheel would build; no Docker needed for that.
        session.run("cibuildwheel", "--print-build-identifiers", "--platform", target, str(ROOT))

    source = work / "src"
    shutil.unpack_archive(sdist, work)
    (work / sdist.name.removesuffix(".tar.gz")).rename(source)
    shutil.rmtree(source / "anyws")  # the tests must import the installed package
    test_requirements = _requirements("test")
    python = session.virtualenv.location  # its interpreter makes the new environments
    runs: list[tuple[str, Path, tuple[str, ...]]] = [
        ("platform-wheel", platform, ()),  # () runs the whole suite
        ("pure-wheel", pure, DIST_SMOKE_TESTS),
        ("sdist", sdist, DIST_SMOKE_TESTS),
    ]
    for name, artifact, tests in runs:
        venv = work / f"venv-{name}"
        session.run(
            "uv", "venv", "--quiet", "--python", str(Path(python) / "bin" / "python"), str(venv)
        )
        bin_dir = venv / ("Scripts" if sys.platform == "win32" else "bin")
        session.run(
            "uv",
            "pip",
            "install",
            "--quiet",
            "--python",
            str(bin_dir / "python"),
            str(artifact),
            *test_requirements,
            env={"ANYWS_REQUIRE_EXTENSION": "1"},  # for the sdist
        )
        compiled = artifact is not pure
        # From the tests' directory, which has no anyws/: the working directory is on
        # sys.path for `python -c`, and the source tree's anyws must not be found.
        with session.chdir(source):
            session.run(
                str(bin_dir / "python"),
                "-c",
                "import importlib.util, sys; "
                "found = importlib.util.find_spec('anyws.sansio._speedups') is not None; "
                f"sys.exit(None if found == {compiled} else 'C extension found: %s' % found)",
                external=True,
            )
            version = session.run(str(bin_dir / "anyws"), "--version", external=True, silent=True)
            session.log(f"{name}: {str(version).strip()}")
            session.run(
                str(bin_dir / "pytest"),
                "-p",
                "no:cacheprovider",
                *tests,
                *session.posargs,
                external=True,
                env={
                    "ANYWS_TESTS_INSTALLED": "1",
                    "ANYWS_TESTS_REQUIRE_BACKENDS": ALL_BACKENDS,
                    # The pure wheel has no extension, on purpose: under CI, the tests
                    # would otherwise require it (tests/sansio/test_mask.py).
                    **({} if compiled else {"ANYWS_NO_SPEEDUPS": "1"}),
                },
            )
    session.log(f"built and tested: {', '.join(p.name for p in (sdist, pure, platform))}")


BENCHMARKS = ("core", "e2e")


@nox.session(python=ONE_PYTHON)
def bench(session: nox.Session) -> None:
    """Run the benchmarks: ``python -m benchmarks.core``, then ``benchmarks.e2e``.

    ``nox -s bench -- e2e --only anyws-trio,raw-trio`` runs one module with the arguments
    after its name; other arguments (``--quick``) go to every module.
    """
    _install_anyws(session, *_requirements("bench"))
    modules: tuple[str, ...] = BENCHMARKS
    args = list(session.posargs)
    if args and args[0] in BENCHMARKS:
        modules, args = (args[0],), args[1:]
    for module in modules:
        session.run("python", "-m", f"benchmarks.{module}", *args)


#: autobahntestsuite's wstest runs on Python 2.7 only: it gets an environment of its own,
#: kept across runs (nox recreates its session environments) and rebuilt when its
#: requirements change.
WSTEST_ENV = ROOT / ".nox" / "_autobahn_py27"
WSTEST_REQUIREMENTS = ROOT / "compliance" / "requirements-wstest.txt"


def _find_python27() -> str | None:
    """A working Python 2.7: ``python2.7`` or ``python2`` on PATH, else pyenv's."""
    candidates = [shutil.which("python2.7"), shutil.which("python2")]
    candidates += [str(path) for path in _pyenv_candidates("2.7")]
    for candidate in candidates:
        if candidate is None:
            continue
        try:
            result = subprocess.run(
                [candidate, "-c", "import sys; sys.stdout.write('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue  # pyenv's shims can fail
        if result.returncode == 0 and result.stdout == "2.7":
            return candidate
    return None


def _install_wstest(session: nox.Session, python27: str) -> Path:
    """Make `WSTEST_ENV`, unless it's there with the same requirements; return wstest."""
    wstest = WSTEST_ENV / "bin" / "wstest"
    stamp = WSTEST_ENV / WSTEST_REQUIREMENTS.name  # what the environment was built from
    if (
        wstest.exists()
        and stamp.exists()
        and stamp.read_bytes() == WSTEST_REQUIREMENTS.read_bytes()
    ):
        session.log(f"wstest: reusing {WSTEST_ENV} (delete it to rebuild it)")
        return wstest
    session.log(f"wstest: building {WSTEST_ENV} with {python27}")
    shutil.rmtree(WSTEST_ENV, ignore_errors=True)
    # Python 2.7 has no venv module, and virtualenv 20.22 dropped Python 2.7 targets.
    session.install("virtualenv<20.22")
    session.run("virtualenv", "--quiet", "--python", python27, str(WSTEST_ENV))
    quiet_pip = {"PIP_NO_PYTHON_VERSION_WARNING": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    session.run(
        str(WSTEST_ENV / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--quiet",
        "--requirement",
        str(WSTEST_REQUIREMENTS),
        external=True,
        env=quiet_pip,
    )
    session.run(
        str(WSTEST_ENV / "bin" / "python"), "-m", "pip", "check", external=True, env=quiet_pip
    )
    shutil.copyfile(WSTEST_REQUIREMENTS, stamp)  # last: a broken build is redone next time
    return wstest


@nox.session(python=ONE_PYTHON)
def autobahn(session: nox.Session) -> None:
    """Run the Autobahn Testsuite: anyws as server and as client, on asyncio and trio.

    wstest needs Python 2.7: without one, the session is skipped (which isn't an error).
    By default every case group runs but 12.* and 13.* (permessage-deflate), which are
    slow on wstest's side: of those, a sample (``SAMPLE`` in compliance/run.py), for
    2 to 3 minutes in all on two cores. ``nox -s autobahn -- full`` runs every case
    (about 26 minutes); it is run.py's ``--full``.
    """
    python27 = _find_python27()
    if python27 is None:
        session.skip(
            "the Autobahn Testsuite needs Python 2.7, and none was found on PATH, through "
            "`pyenv prefix 2.7` or under $PYENV_ROOT/versions (`pyenv install 2.7.18`)"
        )
        return
    wstest = _install_wstest(session, python27)
    _install_anyws(session, *PYPROJECT["project"]["optional-dependencies"]["trio"])
    _report_extension(session)
    args = ["--full" if arg == "full" else arg for arg in session.posargs]
    session.run("python", "compliance/run.py", "--wstest", str(wstest), *args)
