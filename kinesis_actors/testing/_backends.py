"""Which local backend runs, and the server spec of each of its servers.

``kinesalite+dynalite`` (preferred)
    kinesalite 3.3.3 and dynalite 4.0.0 from npm, run by Node.js as two subprocesses. The most
    AWS-like local Kinesis: real sequence numbers, expiring iterators, correct routing after
    split/merge, safe under concurrent writers.

``moto``
    ``moto_server`` in a subprocess, one port for both services. Used when Node.js/npm are
    missing or the npm install fails. moto loses records under concurrent writers and keeps
    routing writes to closed parent shards after resharding, so multi-threaded and
    resharding tests cannot be trusted on it.

A new local server is one more function returning a :class:`ServerSpec`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from kinesis_actors._errors import LocalBackendError
from kinesis_actors.testing._emulators import (
    EMULATOR_PACKAGES,
    emulator_folders,
    emulators_installed,
    find_emulators,
    install_emulators,
)
from kinesis_actors.testing._processes import LOOPBACK, ServerSpec

__all__ = [
    "BACKEND_EMULATORS",
    "BACKEND_MOTO",
    "BACKEND_OPTIONS",
    "KINESIS_PROBE",
    "MOTO_WARNING",
    "BackendChoice",
    "BackendOption",
    "backend_specs",
    "dynalite_spec",
    "kinesalite_spec",
    "moto_spec",
    "resolve_backend",
]

#: Value of :attr:`LocalKinesis.backend` for the npm emulators.
BACKEND_EMULATORS: Final = "kinesalite+dynalite"
#: Value of :attr:`LocalKinesis.backend` for moto server.
BACKEND_MOTO: Final = "moto"
#: What the caller asks for: emulators if possible ("auto"), emulators or fail, or moto.
BackendOption = Literal["auto", "emulators", "moto"]
BACKEND_OPTIONS: Final = ("auto", "emulators", "moto")

KINESIS_PROBE: Final = "Kinesis_20131202.ListStreams"
DYNAMODB_PROBE: Final = "DynamoDB_20120810.ListTables"
MOTO_WARNING: Final = (
    "moto server backend in use: moto loses records under concurrent writers and keeps "
    "routing writes to closed parent shards after resharding (children stay empty), so "
    "multi-threaded and resharding tests are not trustworthy on it. Install Node.js and npm "
    "to run kinesalite+dynalite instead."
)

_WRAPPERS: Final = Path(__file__).with_name("local_emulators")
#: kinesalite through its module API, bound to one interface (its CLI binds every interface).
_KINESALITE_WRAPPER: Final = _WRAPPERS / "kinesalite-loopback.js"
#: dynalite's own CLI. Both wrappers load emulator-process.js beside them: how they stop, and
#: how they survive a client that leaves mid-request.
_DYNALITE_WRAPPER: Final = _WRAPPERS / "dynalite-cli.js"
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
    if backend not in BACKEND_OPTIONS:
        raise ValueError(f"backend must be one of {BACKEND_OPTIONS}, got {backend!r}")
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


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise LocalBackendError("'node' not found on PATH")
    return node


def _node_env(node_modules: Path) -> dict[str, str]:
    existing = os.environ.get("NODE_PATH")
    return {"NODE_PATH": os.pathsep.join(filter(None, [str(node_modules), existing]))}


def _check_shipped(wrapper: Path) -> None:
    if not wrapper.is_file():
        raise LocalBackendError(f"package data missing: {wrapper}")


def kinesalite_spec(folder: Path, port: int = 0) -> ServerSpec:
    """kinesalite from ``folder/node_modules``, through the loopback wrapper shipped here."""
    node = _node()
    _check_shipped(_KINESALITE_WRAPPER)

    def argv(chosen: int) -> list[str]:
        return [node, str(_KINESALITE_WRAPPER), str(chosen), LOOPBACK]

    env = _node_env(folder / "node_modules")
    return ServerSpec("kinesalite", argv, KINESIS_PROBE, ("kinesis",), port, env)


def dynalite_spec(folder: Path, port: int = 0) -> ServerSpec:
    """dynalite from ``folder/node_modules``, with table changes taking effect at once."""
    node = _node()
    dynalite_cli = folder / "node_modules" / "dynalite" / "cli.js"
    if not dynalite_cli.is_file():
        raise LocalBackendError(f"dynalite CLI missing: {dynalite_cli}")
    _check_shipped(_DYNALITE_WRAPPER)

    def argv(chosen: int) -> list[str]:
        return [
            node,
            str(_DYNALITE_WRAPPER),
            "--host",
            LOOPBACK,
            "--port",
            str(chosen),
            "--createTableMs",
            "0",
            "--deleteTableMs",
            "0",
            "--updateTableMs",
            "0",
        ]

    env = {**_node_env(folder / "node_modules"), "KINESIS_ACTORS_DYNALITE_CLI": str(dynalite_cli)}
    return ServerSpec("dynalite", argv, DYNAMODB_PROBE, ("dynamodb",), port, env)


def moto_spec(port: int = 0) -> ServerSpec:
    """moto server: Kinesis and DynamoDB on one port."""

    def argv(chosen: int) -> list[str]:
        return [sys.executable, "-c", _MOTO_BOOT, "-H", LOOPBACK, "-p", str(chosen)]

    return ServerSpec("moto", argv, KINESIS_PROBE, ("kinesis", "dynamodb"), port)


def backend_specs(
    choice: BackendChoice, *, kinesis_port: int = 0, dynamodb_port: int = 0
) -> list[ServerSpec]:
    """The servers ``choice`` runs; together they serve Kinesis and DynamoDB."""
    if choice.backend == BACKEND_EMULATORS:
        if choice.folder is None:
            raise LocalBackendError("the emulator backend needs the folder of node_modules")
        return [
            kinesalite_spec(choice.folder, kinesis_port),
            dynalite_spec(choice.folder, dynamodb_port),
        ]
    return [moto_spec(kinesis_port)]
