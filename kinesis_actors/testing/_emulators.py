"""The pinned kinesalite and dynalite npm packages: where they are looked for, and their install.

The packages are installed (:func:`install_emulators`) into the first writable folder of:
``$KINESIS_ACTORS_EMULATORS``, the repository's ``.emulators/`` (source checkout),
``./.emulators`` (when the working directory is a project), ``~/.cache/kinesis-actors/emulators``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

from kinesis_actors._errors import LocalBackendError
from kinesis_actors._logging import get_logger
from kinesis_actors.testing._processes import last_lines

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

__all__ = [
    "EMULATORS_ENV_VAR",
    "EMULATOR_PACKAGES",
    "default_install_folder",
    "emulator_folders",
    "emulators_installed",
    "find_emulators",
    "install_emulators",
    "installed_version",
]

_log = get_logger(__name__)

#: npm packages and the exact versions the emulator backend runs.
EMULATOR_PACKAGES: Final[Mapping[str, str]] = MappingProxyType(
    {"kinesalite": "3.3.3", "dynalite": "4.0.0"}
)
#: Environment variable naming a folder that holds (or should hold) ``node_modules``.
EMULATORS_ENV_VAR: Final = "KINESIS_ACTORS_EMULATORS"
_NPM_INSTALL_TIMEOUT_S: Final = 600.0
_PROJECT_MARKERS: Final = ("pyproject.toml", "setup.cfg", "setup.py", ".git")


def installed_version(folder: str | os.PathLike[str], package: str) -> str | None:
    """Version of ``package`` installed in ``folder/node_modules``, or None if absent/unreadable."""
    manifest = Path(folder) / "node_modules" / package / "package.json"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) else None


def emulators_installed(folder: str | os.PathLike[str]) -> bool:
    """True if ``folder`` holds exactly the pinned versions of every :data:`EMULATOR_PACKAGES`."""
    return all(
        installed_version(folder, package) == version
        for package, version in EMULATOR_PACKAGES.items()
    )


def _package_repo_root() -> Path | None:
    """The source checkout holding this package, or None when installed (site-packages)."""
    root = Path(__file__).resolve().parent.parent.parent
    return root if _looks_like_project(root) else None


def _user_cache_folder() -> Path:
    return Path.home() / ".cache" / "kinesis-actors" / "emulators"


def _looks_like_project(folder: Path) -> bool:
    return any((folder / marker).exists() for marker in _PROJECT_MARKERS)


def emulator_folders() -> list[Path]:
    """Folders searched for installed emulators, in order, without duplicates.

    ``$KINESIS_ACTORS_EMULATORS``, ``./.emulators`` (relative to the working directory),
    ``.emulators`` in the repository holding this package (source checkouts only), then
    ``~/.cache/kinesis-actors/emulators``.
    """
    candidates: list[Path] = []
    configured = os.environ.get(EMULATORS_ENV_VAR)
    if configured:
        candidates.append(Path(configured).expanduser())
    candidates.append(Path.cwd() / ".emulators")
    repo_root = _package_repo_root()
    if repo_root is not None:
        candidates.append(repo_root / ".emulators")
    candidates.append(_user_cache_folder())

    unique: list[Path] = []
    seen: set[Path] = set()
    for candidate in candidates:
        key = candidate.absolute()
        if key not in seen:
            seen.add(key)
            unique.append(key)
    return unique


def find_emulators() -> Path | None:
    """The first of :func:`emulator_folders` that holds the pinned versions, or None."""
    for folder in emulator_folders():
        if emulators_installed(folder):
            return folder
    return None


def default_install_folder() -> Path:
    """Where :func:`install_emulators` installs when no folder is given and none is installed.

    ``$KINESIS_ACTORS_EMULATORS`` if set; else ``.emulators`` in the repository holding this
    package (source checkout); else ``./.emulators`` if the working directory is a project;
    else ``~/.cache/kinesis-actors/emulators``.
    """
    configured = os.environ.get(EMULATORS_ENV_VAR)
    if configured:
        return Path(configured).expanduser().absolute()
    repo_root = _package_repo_root()
    if repo_root is not None:
        return repo_root / ".emulators"
    cwd = Path.cwd()
    if _looks_like_project(cwd):
        return cwd / ".emulators"
    return _user_cache_folder()


@contextlib.contextmanager
def _install_lock(folder: Path) -> Iterator[None]:
    """Serialise installs into one folder across processes (e.g. pytest-xdist workers)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on POSIX
        yield
        return
    with (folder / ".install.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_package_json(folder: Path) -> None:
    manifest = folder / "package.json"
    if manifest.exists():
        return
    content = {
        "name": "kinesis-actors-emulators",
        "private": True,
        "description": "Local Kinesis/DynamoDB emulators for kinesis-actors (installed by it).",
        "dependencies": dict(EMULATOR_PACKAGES),
    }
    manifest.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")


def install_emulators(folder: str | os.PathLike[str] | None = None) -> Path:
    """Install the pinned kinesalite and dynalite with npm and return the folder.

    Without ``folder``, an existing install found by :func:`find_emulators` is reused, else
    the packages go to :func:`default_install_folder`. Does nothing (and starts no process)
    when the pinned versions are already there.

    Raises:
        LocalBackendError: node or npm is not on ``PATH``, or ``npm install`` failed.
    """
    if folder is None:
        found = find_emulators()
        if found is not None:
            return found
        target = default_install_folder()
    else:
        target = Path(folder).expanduser().absolute()
    if emulators_installed(target):
        return target

    specs = [f"{package}@{version}" for package, version in EMULATOR_PACKAGES.items()]
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise LocalBackendError(
                f"cannot install the local emulators ({', '.join(specs)}): {tool!r} not found "
                "on PATH. Install Node.js (>= 18) with npm, or use the moto backend."
            )
    npm = shutil.which("npm") or "npm"
    command = [
        npm,
        "install",
        "--prefix",
        str(target),
        "--no-audit",
        "--no-fund",
        "--save-exact",
        "--loglevel=error",
        *specs,
    ]
    try:
        target.mkdir(parents=True, exist_ok=True)
        with _install_lock(target):
            if emulators_installed(target):  # another process finished it meanwhile
                return target
            _write_package_json(target)
            _log.info("local_emulators.installing", folder=str(target), packages=specs)
            started = time.monotonic()
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=_NPM_INSTALL_TIMEOUT_S,
                check=False,
            )
    except subprocess.TimeoutExpired as exc:
        raise LocalBackendError(
            f"npm install of {', '.join(specs)} into {target} did not finish within "
            f"{_NPM_INSTALL_TIMEOUT_S:.0f} s"
        ) from exc
    except OSError as exc:
        raise LocalBackendError(
            f"npm install of {', '.join(specs)} into {target} failed: {exc}"
        ) from exc
    if result.returncode != 0:
        output = last_lines(result.stderr or result.stdout or "")
        raise LocalBackendError(
            f"npm install of {', '.join(specs)} into {target} failed with exit code "
            f"{result.returncode}:\n{output}"
        )
    if not emulators_installed(target):
        found_versions = {
            package: installed_version(target, package) for package in EMULATOR_PACKAGES
        }
        raise LocalBackendError(
            f"npm install into {target} finished but the installed versions are "
            f"{found_versions}, expected {dict(EMULATOR_PACKAGES)}"
        )
    _log.info(
        "local_emulators.installed",
        folder=str(target),
        seconds=round(time.monotonic() - started, 2),
    )
    return target
