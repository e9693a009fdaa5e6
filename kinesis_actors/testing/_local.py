"""Local Kinesis and DynamoDB servers for tests and demos.

Two backends:

``kinesalite+dynalite`` (preferred)
    kinesalite 3.3.3 and dynalite 4.0.0 from npm, run by Node.js as two subprocesses bound
    to 127.0.0.1. The most AWS-like local Kinesis: real sequence numbers, expiring
    iterators, correct routing after split/merge, safe under concurrent writers.

``moto``
    ``moto_server`` in a subprocess, one port for both services. Used when Node.js/npm are
    missing or the npm install fails. moto loses records under concurrent writers and keeps
    routing writes to closed parent shards after resharding, so multi-threaded and
    resharding tests cannot be trusted on it.

Both bind to loopback only, use dummy credentials (``test`` / ``test``) and never talk to AWS.

Example::

    with LocalKinesis() as local:
        kinesis = local.kinesis_client()
        kinesis.create_stream(StreamName="demo", ShardCount=2)

The npm packages are installed (``install_emulators``) into the first writable folder of:
``$KINESIS_ACTORS_EMULATORS``, the repository's ``.emulators/`` (source checkout),
``./.emulators`` (when the working directory is a project), ``~/.cache/kinesis-actors/emulators``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import IO, TYPE_CHECKING, Final, Literal

import boto3
from botocore.config import Config

from kinesis_actors._errors import LocalBackendError
from kinesis_actors._logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from types import FrameType, TracebackType

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

__all__ = [
    "BACKEND_EMULATORS",
    "BACKEND_MOTO",
    "DUMMY_ACCESS_KEY_ID",
    "DUMMY_SECRET_ACCESS_KEY",
    "EMULATORS_ENV_VAR",
    "EMULATOR_PACKAGES",
    "LOOPBACK",
    "BackendChoice",
    "BackendOption",
    "LocalKinesis",
    "add_arguments",
    "default_install_folder",
    "emulator_folders",
    "emulators_installed",
    "find_emulators",
    "free_port",
    "free_ports",
    "install_emulators",
    "installed_version",
    "resolve_backend",
    "run_local",
    "temporary_stream",
]

_log = get_logger(__name__)

#: npm packages and the exact versions the emulator backend runs.
EMULATOR_PACKAGES: Final[Mapping[str, str]] = MappingProxyType(
    {"kinesalite": "3.3.3", "dynalite": "4.0.0"}
)
#: Environment variable naming a folder that holds (or should hold) ``node_modules``.
EMULATORS_ENV_VAR: Final = "KINESIS_ACTORS_EMULATORS"
#: The only interface the local servers listen on.
LOOPBACK: Final = "127.0.0.1"
#: Value of :attr:`LocalKinesis.backend` for the npm emulators.
BACKEND_EMULATORS: Final = "kinesalite+dynalite"
#: Value of :attr:`LocalKinesis.backend` for moto server.
BACKEND_MOTO: Final = "moto"
DUMMY_ACCESS_KEY_ID: Final = "test"
DUMMY_SECRET_ACCESS_KEY: Final = "test"

#: What the caller asks for: emulators if possible ("auto"), emulators or fail, or moto.
BackendOption = Literal["auto", "emulators", "moto"]

_BACKEND_OPTIONS: Final = ("auto", "emulators", "moto")
_KINESALITE_WRAPPER: Final = Path(__file__).with_name("local_emulators") / "kinesalite-loopback.js"
_KINESIS_PROBE: Final = "Kinesis_20131202.ListStreams"
_DYNAMODB_PROBE: Final = "DynamoDB_20120810.ListTables"
_NPM_INSTALL_TIMEOUT_S: Final = 600.0
_PORT_ATTEMPTS: Final = 3
_MOTO_WARNING: Final = (
    "moto server backend in use: moto loses records under concurrent writers and keeps "
    "routing writes to closed parent shards after resharding (children stay empty), so "
    "multi-threaded and resharding tests are not trustworthy on it. Install Node.js and npm "
    "to run kinesalite+dynalite instead."
)
# Runs moto's own CLI, plus a watchdog that ends the server when its parent goes away.
_MOTO_BOOT: Final = """\
import os, sys, threading, time
_parent = os.getppid()
def _watch():
    while os.getppid() == _parent:
        time.sleep(1.0)
    os._exit(0)
threading.Thread(target=_watch, name="parent-watchdog", daemon=True).start()
from moto.server import main
main(sys.argv[1:])
"""
# Runs dynalite's own CLI, plus the same watchdog ("dynalite" fills argv[1], which the CLI skips).
_DYNALITE_BOOT: Final = """\
const parent = process.ppid
setInterval(() => { if (process.ppid !== parent) process.exit(0) }, 1000).unref()
process.on('SIGTERM', () => process.exit(0))
require(process.env.KINESIS_ACTORS_DYNALITE_CLI)
"""


# -- emulator folders and installation -----------------------------------------------------------


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
    markers = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
    return root if any((root / marker).exists() for marker in markers) else None


def _user_cache_folder() -> Path:
    return Path.home() / ".cache" / "kinesis-actors" / "emulators"


def _looks_like_project(folder: Path) -> bool:
    markers = ("pyproject.toml", "setup.cfg", "setup.py", ".git")
    return any((folder / marker).exists() for marker in markers)


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


def _tail(text: str, lines: int = 15) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept)


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
        output = _tail(result.stderr or result.stdout or "")
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


# -- backend choice ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendChoice:
    """Outcome of :func:`resolve_backend`."""

    backend: str
    """:data:`BACKEND_EMULATORS` or :data:`BACKEND_MOTO`."""
    folder: Path | None = None
    """Folder holding ``node_modules`` (emulators only)."""
    fallback_reason: str | None = None
    """Why "auto" fell back to moto, else None."""


def _moto_server_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("moto", "flask", "werkzeug"))


def _emulator_folder(folder: str | os.PathLike[str] | None, install: bool) -> Path:
    if shutil.which("node") is None:
        raise LocalBackendError(
            "'node' not found on PATH: kinesalite and dynalite need Node.js (>= 18)."
        )
    if folder is not None:
        target = Path(folder).expanduser().absolute()
        if emulators_installed(target):
            return target
    else:
        found = find_emulators()
        if found is not None:
            return found
    if not install:
        where = str(folder) if folder is not None else ", ".join(map(str, emulator_folders()))
        raise LocalBackendError(
            f"kinesalite {EMULATOR_PACKAGES['kinesalite']} and dynalite "
            f"{EMULATOR_PACKAGES['dynalite']} are not installed in {where}; "
            "run `kinesis-actors local --install`."
        )
    return install_emulators(folder)


def resolve_backend(
    backend: BackendOption = "auto",
    *,
    emulators_dir: str | os.PathLike[str] | None = None,
    install: bool = True,
) -> BackendChoice:
    """Decide which backend to run, installing the npm emulators if needed and allowed.

    ``"emulators"`` fails when node is missing or the install fails; ``"auto"`` then falls
    back to moto server; ``"moto"`` always picks moto.

    Raises:
        ValueError: ``backend`` is not one of "auto", "emulators", "moto".
        LocalBackendError: the requested backend cannot run here.
    """
    if backend not in _BACKEND_OPTIONS:
        raise ValueError(f"backend must be one of {_BACKEND_OPTIONS}, got {backend!r}")
    if backend != "moto":
        try:
            return BackendChoice(BACKEND_EMULATORS, _emulator_folder(emulators_dir, install))
        except LocalBackendError as exc:
            if backend == "emulators":
                raise
            reason = str(exc)
        if not _moto_server_available():
            raise LocalBackendError(
                f"no local backend can run: {reason}; and moto server is not installed "
                "(pip install 'moto[server]')."
            )
        return BackendChoice(BACKEND_MOTO, fallback_reason=reason)
    if not _moto_server_available():
        raise LocalBackendError("moto server is not installed (pip install 'moto[server]').")
    return BackendChoice(BACKEND_MOTO)


# -- ports and processes -------------------------------------------------------------------------


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """``count`` distinct TCP ports that are free on ``host`` right now (the OS picks them)."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now."""
    return free_ports(1, host)[0]


def _http_answers(port: int, target: str, timeout: float = 0.5) -> bool:
    """True once something on ``127.0.0.1:port`` answers an AWS JSON POST with any status."""
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        connection.request(
            "POST",
            "/",
            body=b"{}",
            headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
        )
        connection.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


def _terminate(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM each process by pid, SIGKILL those still alive after ``grace`` s, reap all."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(grace)
    processes.clear()


@dataclass(frozen=True)
class _ServerSpec:
    name: str
    argv: Callable[[int], list[str]]
    probe: str
    port: int  # 0: pick a free one


@dataclass
class _Server:
    spec: _ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None


# -- the servers ---------------------------------------------------------------------------------


class LocalKinesis:
    """Local Kinesis + DynamoDB servers on loopback, as a context manager.

    Args:
        backend: "auto" (emulators, else moto with a warning), "emulators" or "moto".
        kinesis_port: Port for Kinesis (and for moto's single port); 0 picks a free one.
        dynamodb_port: Port for DynamoDB (emulators only); 0 picks a free one.
        region: Region for the clients and :meth:`environ`.
        emulators_dir: Folder with ``node_modules``; default: :func:`find_emulators`.
        install: Run :func:`install_emulators` when the emulators are missing.
        log_dir: Folder for the servers' stdout/stderr logs; default: a temporary folder
            removed by :meth:`stop`.
        startup_timeout: Seconds to wait for both servers to answer.
        stop_timeout: Seconds between SIGTERM and SIGKILL.
    """

    def __init__(
        self,
        backend: BackendOption = "auto",
        *,
        kinesis_port: int = 0,
        dynamodb_port: int = 0,
        region: str = "us-east-1",
        emulators_dir: str | os.PathLike[str] | None = None,
        install: bool = True,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 5.0,
    ) -> None:
        if backend not in _BACKEND_OPTIONS:
            raise ValueError(f"backend must be one of {_BACKEND_OPTIONS}, got {backend!r}")
        self.requested_backend: BackendOption = backend
        self.region = region
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._kinesis_port = kinesis_port
        self._dynamodb_port = dynamodb_port
        self._emulators_dir = emulators_dir
        self._install = install
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._lock = threading.RLock()
        self._servers: dict[str, _Server] = {}
        self._processes: list[subprocess.Popen[bytes]] = []
        self._tmp_dir: tempfile.TemporaryDirectory[str] | None = None
        self._finalizer: (
            weakref.finalize[[list[subprocess.Popen[bytes]], float], LocalKinesis] | None
        )
        self._finalizer = None
        self._kinesis_endpoint: str | None = None
        self._dynamodb_endpoint: str | None = None
        #: :data:`BACKEND_EMULATORS` or :data:`BACKEND_MOTO` once started, else None.
        self.backend: str | None = None
        #: Seconds :meth:`start` took to get both servers answering (installs excluded).
        self.startup_seconds: float | None = None
        #: Folder of the servers' logs while running.
        self.log_dir: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> LocalKinesis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalKinesis:
        """Start the servers (no-op if running) and wait until they answer.

        Raises:
            LocalBackendError: no backend can run, or a server did not come up in time.
        """
        with self._lock:
            if self._servers:
                return self
            choice = resolve_backend(
                self.requested_backend, emulators_dir=self._emulators_dir, install=self._install
            )
            if choice.backend == BACKEND_MOTO:
                _log.warning(
                    "local_backend.moto",
                    message=_MOTO_WARNING,
                    fallback_reason=choice.fallback_reason,
                )
            try:
                self._launch(choice)
            except BaseException:
                self.stop()
                raise
            return self

    def stop(self) -> None:
        """Stop the servers by pid (SIGTERM, SIGKILL after ``stop_timeout``). Idempotent."""
        with self._lock:
            was_running = bool(self._processes)
            _terminate(self._processes, self.stop_timeout)
            self._servers.clear()
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            if self._tmp_dir is not None:
                self._tmp_dir.cleanup()
                self._tmp_dir = None
            self.log_dir = None
            self._kinesis_endpoint = None
            self._dynamodb_endpoint = None
            if was_running:
                _log.info("local_backend.stopped", backend=self.backend)

    def _launch(self, choice: BackendChoice) -> None:
        started = time.monotonic()
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            self.log_dir = self._log_dir
        else:
            self._tmp_dir = tempfile.TemporaryDirectory(prefix="kinesis-actors-local-")
            self.log_dir = Path(self._tmp_dir.name)
        self._finalizer = weakref.finalize(self, _terminate, self._processes, self.stop_timeout)

        env = dict(os.environ)
        env["KINESIS_ACTORS_EXIT_WITH_PARENT"] = "1"
        if choice.backend == BACKEND_EMULATORS:
            assert choice.folder is not None
            specs = self._emulator_specs(choice.folder, env)
        else:
            specs = [self._moto_spec()]
        self.backend = choice.backend
        self._start_servers(specs, env, deadline=started + self.startup_timeout)

        if choice.backend == BACKEND_EMULATORS:
            self._kinesis_endpoint = f"http://{LOOPBACK}:{self._servers['kinesalite'].port}"
            self._dynamodb_endpoint = f"http://{LOOPBACK}:{self._servers['dynalite'].port}"
        else:
            self._kinesis_endpoint = self._dynamodb_endpoint = (
                f"http://{LOOPBACK}:{self._servers['moto'].port}"
            )
        self.startup_seconds = time.monotonic() - started
        _log.info(
            "local_backend.started",
            backend=self.backend,
            kinesis_endpoint=self._kinesis_endpoint,
            dynamodb_endpoint=self._dynamodb_endpoint,
            pids=self.pids,
            seconds=round(self.startup_seconds, 3),
        )

    def _emulator_specs(self, folder: Path, env: dict[str, str]) -> list[_ServerSpec]:
        node = shutil.which("node")
        if node is None:
            raise LocalBackendError("'node' not found on PATH")
        node_modules = folder / "node_modules"
        dynalite_cli = node_modules / "dynalite" / "cli.js"
        if not _KINESALITE_WRAPPER.is_file():
            raise LocalBackendError(f"package data missing: {_KINESALITE_WRAPPER}")
        if not dynalite_cli.is_file():
            raise LocalBackendError(f"dynalite CLI missing: {dynalite_cli}")
        existing = env.get("NODE_PATH")
        env["NODE_PATH"] = os.pathsep.join(filter(None, [str(node_modules), existing]))
        env["KINESIS_ACTORS_DYNALITE_CLI"] = str(dynalite_cli)

        def kinesalite_argv(port: int) -> list[str]:
            return [node, str(_KINESALITE_WRAPPER), str(port), LOOPBACK]

        def dynalite_argv(port: int) -> list[str]:
            return [
                node,
                "-e",
                _DYNALITE_BOOT,
                "dynalite",
                "--host",
                LOOPBACK,
                "--port",
                str(port),
                "--createTableMs",
                "0",
                "--deleteTableMs",
                "0",
                "--updateTableMs",
                "0",
            ]

        return [
            _ServerSpec("kinesalite", kinesalite_argv, _KINESIS_PROBE, self._kinesis_port),
            _ServerSpec("dynalite", dynalite_argv, _DYNAMODB_PROBE, self._dynamodb_port),
        ]

    def _moto_spec(self) -> _ServerSpec:
        def moto_argv(port: int) -> list[str]:
            return [sys.executable, "-c", _MOTO_BOOT, "-H", LOOPBACK, "-p", str(port)]

        return _ServerSpec("moto", moto_argv, _KINESIS_PROBE, self._kinesis_port)

    def _spawn(self, spec: _ServerSpec, port: int, env: dict[str, str]) -> _Server:
        argv = spec.argv(port)
        log_path: Path | None = None
        sink: IO[bytes] | int = subprocess.DEVNULL
        if self.log_dir is not None:
            log_path = self.log_dir / f"{spec.name}-{port}.log"
            sink = log_path.open("ab")
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: a terminal's Ctrl-C is ours to pass on
                close_fds=True,
            )
        except OSError as exc:
            raise LocalBackendError(f"could not start {spec.name}: {exc}") from exc
        finally:
            if not isinstance(sink, int):
                sink.close()
        self._processes.append(process)
        return _Server(spec, port, process, log_path)

    def _start_servers(
        self, specs: list[_ServerSpec], env: dict[str, str], *, deadline: float
    ) -> None:
        pending = list(specs)
        attempt = 0
        while pending:
            attempt += 1
            chosen = free_ports(len(pending))
            launched = [
                self._spawn(spec, spec.port or chosen[index], env)
                for index, spec in enumerate(pending)
            ]
            retry: list[_ServerSpec] = []
            for server in launched:
                problem = self._wait_ready(server, deadline)
                if problem is None:
                    self._servers[server.spec.name] = server
                    continue
                exited_by_itself = server.process.poll() is not None
                _terminate([server.process], self.stop_timeout)
                self._processes.remove(server.process)
                log_tail = self._log_tail(server)
                if exited_by_itself and server.spec.port == 0 and attempt < _PORT_ATTEMPTS:
                    # most likely someone else took the free port before the server bound it
                    _log.info(
                        "local_backend.retrying",
                        server=server.spec.name,
                        port=server.port,
                        problem=problem,
                        log=log_tail,
                    )
                    retry.append(server.spec)
                    continue
                raise LocalBackendError(
                    f"{server.spec.name} did not start on {LOOPBACK}:{server.port}: {problem}"
                    + (f"\n{log_tail}" if log_tail else "")
                )
            pending = retry

    @staticmethod
    def _wait_ready(server: _Server, deadline: float) -> str | None:
        while True:
            code = server.process.poll()
            if code is not None:
                return f"exited with code {code}"
            if _http_answers(server.port, server.spec.probe):
                code = server.process.poll()
                return None if code is None else f"exited with code {code}"
            if time.monotonic() >= deadline:
                return "no answer before the startup timeout"
            time.sleep(0.05)

    @staticmethod
    def _log_tail(server: _Server) -> str:
        if server.log_path is None:
            return ""
        try:
            return _tail(server.log_path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return ""

    # -- state -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while every server process is alive."""
        with self._lock:
            return bool(self._servers) and not self.exited()

    def exited(self) -> list[str]:
        """Names of servers whose process has exited although :meth:`stop` was not called."""
        with self._lock:
            return [name for name, s in self._servers.items() if s.process.poll() is not None]

    @property
    def pids(self) -> dict[str, int]:
        """Server name ("kinesalite", "dynalite" or "moto") to process id, while running."""
        with self._lock:
            return {name: server.process.pid for name, server in self._servers.items()}

    @property
    def kinesis_endpoint(self) -> str:
        """Kinesis endpoint URL, e.g. ``http://127.0.0.1:45123``."""
        if self._kinesis_endpoint is None:
            raise LocalBackendError("LocalKinesis is not running: call start() first")
        return self._kinesis_endpoint

    @property
    def dynamodb_endpoint(self) -> str:
        """DynamoDB endpoint URL (the same as Kinesis on moto)."""
        if self._dynamodb_endpoint is None:
            raise LocalBackendError("LocalKinesis is not running: call start() first")
        return self._dynamodb_endpoint

    def environ(self) -> dict[str, str]:
        """Environment variables pointing boto3 (and anything using it) at these servers."""
        return {
            "AWS_ENDPOINT_URL_KINESIS": self.kinesis_endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_endpoint,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }

    def shell_exports(self) -> list[str]:
        """``export NAME=value`` lines for :meth:`environ`, quoted for POSIX shells."""
        return [f"export {name}={shlex.quote(value)}" for name, value in self.environ().items()]

    # -- clients -----------------------------------------------------------------------------

    def _session(self) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=DUMMY_ACCESS_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
            region_name=self.region,
        )

    @staticmethod
    def _config(config: Config | None) -> Config:
        base = Config(connect_timeout=2, read_timeout=30, retries={"mode": "standard"})
        return base.merge(config) if config is not None else base

    def kinesis_client(self, *, config: Config | None = None) -> KinesisClient:
        """A new boto3 Kinesis client for this server (``config`` is merged over the defaults)."""
        return self._session().client(
            "kinesis", endpoint_url=self.kinesis_endpoint, config=self._config(config)
        )

    def dynamodb_client(self, *, config: Config | None = None) -> DynamoDBClient:
        """A new boto3 DynamoDB client for this server (``config`` is merged over the defaults)."""
        return self._session().client(
            "dynamodb", endpoint_url=self.dynamodb_endpoint, config=self._config(config)
        )

    def __repr__(self) -> str:
        if self._kinesis_endpoint is None:
            return f"LocalKinesis(backend={self.requested_backend!r}, stopped)"
        return (
            f"LocalKinesis(backend={self.backend!r}, kinesis={self._kinesis_endpoint}, "
            f"dynamodb={self._dynamodb_endpoint})"
        )


# -- CLI: `kinesis-actors local` -----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``kinesis-actors local`` options to ``parser``."""
    parser.add_argument(
        "--backend",
        choices=_BACKEND_OPTIONS,
        default="auto",
        help="auto: kinesalite+dynalite, else moto server (default); emulators; moto",
    )
    parser.add_argument(
        "--kinesis-port", type=int, default=0, help="Kinesis port (moto: its only port); 0 = free"
    )
    parser.add_argument(
        "--dynamodb-port", type=int, default=0, help="DynamoDB port (emulators); 0 = free"
    )
    parser.add_argument("--region", default="us-east-1", help="region (default: us-east-1)")
    parser.add_argument(
        "--emulators-dir",
        type=Path,
        default=None,
        help=f"folder with node_modules (default: ${EMULATORS_ENV_VAR}, ./.emulators, ...)",
    )
    parser.add_argument(
        "--log-dir", type=Path, default=None, help="keep the servers' logs in this folder"
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=30.0, help="seconds to wait (default: 30)"
    )
    parser.add_argument(
        "--install",
        action="store_true",
        help="only install kinesalite and dynalite with npm, then exit",
    )


@contextlib.contextmanager
def temporary_stream(prefix: str = "stream", shard_count: int = 1) -> Iterator[str]:
    """A new stream, deleted afterwards, wherever ``AWS_ENDPOINT_URL_KINESIS`` points.

    When it points nowhere, local servers are started for the duration (and their endpoints put
    in ``os.environ`` meanwhile), so an example or a demo runs the same on a laptop, in CI, or
    against an endpoint the caller chose.
    """
    name = f"{prefix}-{os.urandom(4).hex()}"
    with contextlib.ExitStack() as stack:
        if not os.environ.get("AWS_ENDPOINT_URL_KINESIS"):
            servers = stack.enter_context(LocalKinesis())
            saved = dict(os.environ)
            os.environ.update(servers.environ())

            def restore() -> None:
                os.environ.clear()
                os.environ.update(saved)

            stack.callback(restore)
        kinesis = boto3.client("kinesis")
        kinesis.create_stream(StreamName=name, ShardCount=shard_count)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
        stack.callback(kinesis.delete_stream, StreamName=name)
        yield name


def run_local(args: argparse.Namespace) -> int:
    """Run ``kinesis-actors local``: start the servers, print how to use them, wait for a signal.

    Returns the process exit code.
    """
    if getattr(args, "install", False):
        try:
            folder = install_emulators(getattr(args, "emulators_dir", None))
        except LocalBackendError as exc:
            print(f"kinesis-actors local: {exc}", file=sys.stderr)
            return 1
        versions = ", ".join(f"{name} {version}" for name, version in EMULATOR_PACKAGES.items())
        print(f"{versions} installed in {folder}", flush=True)
        return 0

    local = LocalKinesis(
        backend=getattr(args, "backend", "auto"),
        kinesis_port=getattr(args, "kinesis_port", 0),
        dynamodb_port=getattr(args, "dynamodb_port", 0),
        region=getattr(args, "region", "us-east-1"),
        emulators_dir=getattr(args, "emulators_dir", None),
        log_dir=getattr(args, "log_dir", None),
        startup_timeout=getattr(args, "startup_timeout", 30.0),
    )
    try:
        local.start()
    except LocalBackendError as exc:
        print(f"kinesis-actors local: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous: dict[signal.Signals, signal._HANDLER] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not the main thread: rely on the caller
                previous[signum] = signal.signal(signum, request_stop)

        if local.backend == BACKEND_MOTO:
            print(f"WARNING: {_MOTO_WARNING}", file=sys.stderr)
        print(f"Local backend: {local.backend} (pids {local.pids})")
        print(f"  Kinesis:  {local.kinesis_endpoint}")
        print(f"  DynamoDB: {local.dynamodb_endpoint}")
        print(f"  Logs:     {local.log_dir}")
        print("Point boto3 at it with:")
        for line in local.shell_exports():
            print(f"  {line}")
        print("Press Ctrl-C to stop.", flush=True)

        while not stop_requested.wait(0.5):
            dead = local.exited()
            if dead:
                print(f"kinesis-actors local: {', '.join(dead)} exited", file=sys.stderr)
                return 1
        return 0
    finally:
        local.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        print("Stopped.", flush=True)
