"""Local server processes: free loopback ports, a spec per server, start until they answer, stop.

A server is described by a :class:`ServerSpec` (its command line for a port, the AWS JSON
target it answers when ready, the services it serves); :func:`start_servers` runs a list of
them, retries a server that lost its free port to another process, and refuses a fixed port
that something else already listens on (its answers would be mistaken for ours).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Final

import boto3
from botocore.config import Config

from kinesis_actors._aws import new_client
from kinesis_actors._errors import LocalBackendError
from kinesis_actors._logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path

__all__ = [
    "DUMMY_ACCESS_KEY_ID",
    "DUMMY_SECRET_ACCESS_KEY",
    "LOOPBACK",
    "Server",
    "ServerSpec",
    "describe_exits",
    "free_port",
    "free_ports",
    "http_answers",
    "last_lines",
    "local_client",
    "port_in_use",
    "start_servers",
    "terminate",
]

_log = get_logger(__name__)

#: The only interface the local servers listen on.
LOOPBACK: Final = "127.0.0.1"
_PORT_ATTEMPTS: Final = 3
DUMMY_ACCESS_KEY_ID: Final = "test"
DUMMY_SECRET_ACCESS_KEY: Final = "test"


@dataclass(frozen=True)
class ServerSpec:
    """How to run one local server."""

    name: str
    """Short name, e.g. "kinesalite": the key of :attr:`LocalKinesis.pids` and of its log file."""
    argv: Callable[[int], list[str]]
    """The command line that makes the server listen on ``127.0.0.1:<port>``."""
    probe: str
    """An ``X-Amz-Target`` the server answers (with any status) once it is ready."""
    services: tuple[str, ...]
    """The boto3 service names it serves, e.g. ``("kinesis",)``."""
    port: int = 0
    """A fixed port, or 0 to pick a free one."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables the server needs on top of the caller's."""


@dataclass
class Server:
    """A started server process."""

    spec: ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path | None

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"


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


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """True if ``host:port`` cannot be bound now (another process listens on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as servers bind: connections of an earlier server in TIME_WAIT do not count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def http_answers(port: int, target: str, timeout: float = 0.5) -> bool:
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


def terminate(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
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


def local_client(service: str, endpoint: str, region: str, config: Config | None = None) -> Any:
    """A boto3 client for a local server, with dummy credentials (``config`` merged over ours)."""
    base = Config(connect_timeout=2, read_timeout=30, retries={"mode": "standard"})
    session = boto3.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
        region_name=region,
    )
    return new_client(
        service,
        session=session,
        endpoint_url=endpoint,
        config=base.merge(config) if config is not None else base,
    )


def describe_exits(servers: Iterable[Server]) -> str:
    """How each of ``servers`` that has exited ended: its exit code and the last lines of its log.

    "" while every one of them runs. For the error that reports a server gone mid-run, so that
    whoever reads it sees the server's own last words, not only "connection refused".
    """
    reports = []
    for server in servers:
        code = server.process.poll()
        if code is None:
            continue
        report = (
            f"{server.spec.name} (pid {server.process.pid}, {server.endpoint}) exited with code "
            f"{code}"
        )
        tail = _log_tail(server)
        # the first line stands alone (the command line reports only that one)
        reports.append(f"{report}\nthe last lines of its log:\n{tail}" if tail else report)
    return "\n".join(reports)


def last_lines(text: str, lines: int = 15) -> str:
    """The last non-blank ``lines`` of a log or a tool's output, for an error message."""
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept)


def start_servers(
    specs: list[ServerSpec],
    env: Mapping[str, str],
    *,
    processes: list[subprocess.Popen[bytes]],
    log_dir: Path | None,
    deadline: float,
    stop_timeout: float,
) -> dict[str, Server]:
    """Start every spec and wait until each answers its probe; returns name -> server.

    Each started process is appended to ``processes`` at once, so the caller can stop them
    even when this raises.

    Raises:
        LocalBackendError: a fixed port is in use, or a server did not come up in time.
    """
    for spec in specs:
        if spec.port and port_in_use(spec.port):
            raise LocalBackendError(
                f"{spec.name} did not start on {LOOPBACK}:{spec.port}: the port is in use by "
                "another process; choose another port, or 0 for a free one"
            )
    servers: dict[str, Server] = {}
    pending = list(specs)
    attempt = 0
    while pending:
        attempt += 1
        chosen = free_ports(len(pending))
        launched = [
            _spawn(spec, spec.port or chosen[index], env, processes, log_dir)
            for index, spec in enumerate(pending)
        ]
        retry: list[ServerSpec] = []
        for server in launched:
            problem = _wait_ready(server, deadline)
            if problem is None:
                servers[server.spec.name] = server
                continue
            exited_by_itself = server.process.poll() is not None
            processes.remove(server.process)
            terminate([server.process], stop_timeout)
            log_tail = _log_tail(server)
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
    return servers


def _spawn(
    spec: ServerSpec,
    port: int,
    env: Mapping[str, str],
    processes: list[subprocess.Popen[bytes]],
    log_dir: Path | None,
) -> Server:
    log_path: Path | None = None
    sink: IO[bytes] | int = subprocess.DEVNULL
    if log_dir is not None:
        log_path = log_dir / f"{spec.name}-{port}.log"
        sink = log_path.open("ab")
    try:
        process = subprocess.Popen(
            spec.argv(port),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**env, **spec.env},
            start_new_session=True,  # own process group: a terminal's Ctrl-C is ours to pass on
            close_fds=True,
        )
    except OSError as exc:
        raise LocalBackendError(f"could not start {spec.name}: {exc}") from exc
    finally:
        if not isinstance(sink, int):
            sink.close()
    processes.append(process)
    return Server(spec, port, process, log_path)


def _wait_ready(server: Server, deadline: float) -> str | None:
    while True:
        code = server.process.poll()
        if code is not None:
            return f"exited with code {code}"
        if http_answers(server.port, server.spec.probe):
            code = server.process.poll()
            return None if code is None else f"exited with code {code}"
        if time.monotonic() >= deadline:
            return "no answer before the startup timeout"
        time.sleep(0.05)


def _log_tail(server: Server) -> str:
    if server.log_path is None:
        return ""
    try:
        return last_lines(server.log_path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return ""
