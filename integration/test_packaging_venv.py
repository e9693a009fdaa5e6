"""The sdist and wheel as a user gets them: built, installed into a fresh venv, and used.

Builds both from a copy of the working tree (so the shared ``build/`` directory is not touched),
installs the wheel with its dependencies from the package index into a new virtualenv (no
``--system-site-packages``), then runs ``kinesis-actors --help`` and the configuration
quick start with that venv's interpreter. Needs the package index (PyPI or the pip-configured
mirror); takes about a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: What a build needs from the checkout.
_SOURCES = ("kinesis_actors", "setup.cfg", "pyproject.toml", "README.rst", "reference.conf")
_OPTIONAL_SOURCES = ("MANIFEST.in", "CHANGELOG.md")
_COMMANDS = ("local", "leases", "put", "reliability", "tail")
_BLOCK = re.compile(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)")

pytestmark = pytest.mark.timeout(900)


def _run(
    args: list[str | Path],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a step; on failure or timeout, fail with the command and the end of its output."""
    command = " ".join(str(arg) for arg in args)
    try:
        result = subprocess.run(
            [str(arg) for arg in args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        pytest.fail(f"timed out after {timeout:.0f} s: {command}\n{output[-3000:]}", pytrace=False)
    if result.returncode != 0:
        pytest.fail(
            f"exit {result.returncode}: {command}\n"
            f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}",
            pytrace=False,
        )
    return result


def _clean_env() -> dict[str, str]:
    """The environment without anything that points Python or pip at the project's venv."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "KINESIS_ACTORS_CONFIG"}
        and not key.startswith("PIP_NO_INDEX")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build --no-isolation`` of a copy of the tree: the sdist, then a wheel from it."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "src"
    source.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (*_SOURCES, *(n for n in _OPTIONAL_SOURCES if (ROOT / n).exists())):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    out = base / "dist"
    _run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source],
        timeout=300,
        cwd=base,
    )
    return out


@pytest.fixture(scope="module")
def fresh_venv(dist: Path) -> Path:
    """A new virtualenv with the wheel and its dependencies installed from the package index."""
    venv = dist.parent / "fresh"
    _run([sys.executable, "-m", "venv", venv], timeout=120)
    (wheel,) = dist.glob("kinesis_actors-*.whl")
    _run(
        [venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel],
        timeout=600,
        env=_clean_env(),
        cwd=dist.parent,
    )
    return venv


def test_sdist_carries_the_data_files_and_documents(dist: Path) -> None:
    (sdist,) = dist.glob("kinesis_actors-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    expected = {
        "README.rst",
        "setup.cfg",
        "pyproject.toml",
        "PKG-INFO",
        "reference.conf",
        "kinesis_actors/reference.conf",
        "kinesis_actors/py.typed",
        "kinesis_actors/reliability/reliability.conf",
        "kinesis_actors/testing/local_emulators/kinesalite-loopback.js",
        "kinesis_actors/testing/local_emulators/dynalite-cli.js",
        "kinesis_actors/testing/local_emulators/emulator-process.js",
    }
    if (ROOT / "CHANGELOG.md").exists():
        expected.add("CHANGELOG.md")
    assert expected <= names, f"missing from the sdist: {sorted(expected - names)}"
    assert not any("__pycache__" in name for name in names)


def test_wheel_carries_the_data_files(dist: Path) -> None:
    import zipfile

    (wheel,) = dist.glob("kinesis_actors-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in (
        "kinesis_actors/reference.conf",
        "kinesis_actors/py.typed",
        "kinesis_actors/reliability/reliability.conf",
        "kinesis_actors/testing/local_emulators/kinesalite-loopback.js",
        "kinesis_actors/testing/local_emulators/dynalite-cli.js",
        "kinesis_actors/testing/local_emulators/emulator-process.js",
    ):
        assert name in names


def test_the_command_lists_every_subcommand(fresh_venv: Path, tmp_path: Path) -> None:
    result = _run(
        [fresh_venv / "bin" / "kinesis-actors", "--help"],
        timeout=60,
        cwd=tmp_path,
        env=_clean_env(),
    )
    listed = set(re.findall(r"^ {4}([a-z]+) ", result.stdout, re.MULTILINE))
    assert set(_COMMANDS) <= listed, result.stdout
    for command in _COMMANDS:
        _run(
            [fresh_venv / "bin" / "kinesis-actors", command, "--help"],
            timeout=60,
            cwd=tmp_path,
            env=_clean_env(),
        )


def test_the_readme_configuration_quick_start_runs(fresh_venv: Path, tmp_path: Path) -> None:
    match = _BLOCK.search((ROOT / "docs" / "getting-started.rst").read_text())
    assert match is not None, "docs/getting-started.rst has no python code block"
    block = "\n".join(line[4:] for line in match.group(1).splitlines()).strip() + "\n"
    check = (
        "\nimport kinesis_actors, pathlib, sys\n"
        "assert pathlib.Path(kinesis_actors.__file__).is_relative_to(sys.prefix), "
        "kinesis_actors.__file__\n"
        "print('quick start ok')\n"
    )
    result = _run(
        [fresh_venv / "bin" / "python", "-c", block + check],
        timeout=120,
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert "quick start ok" in result.stdout
