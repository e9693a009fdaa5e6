"""LocalKinesis: local Kinesis and DynamoDB servers on loopback, for tests and demos.

The servers are kinesalite + dynalite (preferred) or moto server (see ``_backends``); all bind
to loopback only, use dummy credentials (``test`` / ``test``) and never talk to AWS.

Example::

    with LocalKinesis() as local:
        kinesis = local.kinesis_client()
        kinesis.create_stream(StreamName="demo", ShardCount=2)

With ``aws_limits=True`` (the limits mode) every client goes through a proxy enforcing AWS's
Kinesis and DynamoDB limits (``_limits_proxy``); :attr:`LocalKinesis.limits` gives its counters.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Final

from botocore.config import Config

from kinesis_actors._aws import new_client
from kinesis_actors._errors import LocalBackendError
from kinesis_actors._lifecycle import StartedOnEnter
from kinesis_actors._logging import get_logger
from kinesis_actors.testing._backends import (
    BACKEND_MOTO,
    BACKEND_OPTIONS,
    MOTO_WARNING,
    BackendChoice,
    BackendOption,
    backend_specs,
    resolve_backend,
)
from kinesis_actors.testing._limits_process import LimitsProxyProcess
from kinesis_actors.testing._processes import (
    DUMMY_ACCESS_KEY_ID,
    DUMMY_SECRET_ACCESS_KEY,
    Server,
    ServerSpec,
    describe_exits,
    local_client,
    start_servers,
    terminate,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

__all__ = [
    "LocalKinesis",
    "temporary_stream",
]

_log = get_logger(__name__)

_LIMITS_PROXY: Final = "limits-proxy"


class LocalKinesis(StartedOnEnter):
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
        aws_limits: Put the limits proxy (AWS's per-shard, per-API and provisioned-table
            limits) in front of the servers; the endpoints are then the proxy's.
        latency_ms: Milliseconds the proxy adds to every call (needs ``aws_limits``).
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
        aws_limits: bool = False,
        latency_ms: float = 0.0,
    ) -> None:
        if backend not in BACKEND_OPTIONS:
            raise ValueError(f"backend must be one of {BACKEND_OPTIONS}, got {backend!r}")
        if latency_ms and not aws_limits:
            raise ValueError("latency_ms needs aws_limits=True (the limits proxy adds it)")
        self.aws_limits = aws_limits
        self.latency_ms = latency_ms
        #: The limits proxy while running with ``aws_limits``: ``limits.stats()`` are its counters.
        self.limits: LimitsProxyProcess | None = None
        #: The counters table the limits proxy printed when it stopped.
        self.limits_report: str = ""
        self._upstream: dict[str, str] = {}
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
        self._servers: dict[str, Server] = {}
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
                    message=MOTO_WARNING,
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
            if self.limits is not None:
                self.limits.stop()
                self.limits_report = self.limits.exit_report
                self.limits = None
            self._upstream = {}
            terminate(self._processes, self.stop_timeout)
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
        self._finalizer = weakref.finalize(self, terminate, self._processes, self.stop_timeout)

        env = dict(os.environ)
        env["KINESIS_ACTORS_EXIT_WITH_PARENT"] = "1"
        specs = self._server_specs(choice)
        self.backend = choice.backend
        self._servers = start_servers(
            specs,
            env,
            processes=self._processes,
            log_dir=self.log_dir,
            deadline=started + self.startup_timeout,
            stop_timeout=self.stop_timeout,
        )
        endpoints = {
            service: server.endpoint
            for server in self._servers.values()
            for service in server.spec.services
        }
        self._upstream = {"kinesis": endpoints["kinesis"], "dynamodb": endpoints["dynamodb"]}
        self._kinesis_endpoint = endpoints["kinesis"]
        self._dynamodb_endpoint = endpoints["dynamodb"]
        if self.aws_limits:
            self.limits = LimitsProxyProcess(
                endpoints["kinesis"],
                endpoints["dynamodb"],
                latency_ms=self.latency_ms,
                startup_timeout=max(1.0, started + self.startup_timeout - time.monotonic()),
            ).start()
            self._kinesis_endpoint = self._dynamodb_endpoint = self.limits.endpoint
        self.startup_seconds = time.monotonic() - started
        _log.info(
            "local_backend.started",
            backend=self.backend,
            kinesis_endpoint=self._kinesis_endpoint,
            dynamodb_endpoint=self._dynamodb_endpoint,
            pids=self.pids,
            seconds=round(self.startup_seconds, 3),
        )

    def _server_specs(self, choice: BackendChoice) -> list[ServerSpec]:
        """The servers to run for ``choice``: together they must serve Kinesis and DynamoDB."""
        return backend_specs(
            choice, kinesis_port=self._kinesis_port, dynamodb_port=self._dynamodb_port
        )

    # -- state -------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while every server process is alive."""
        with self._lock:
            return bool(self._servers) and not self.exited()

    def exited(self) -> list[str]:
        """Names of servers whose process has exited although :meth:`stop` was not called."""
        with self._lock:
            dead = [name for name, s in self._servers.items() if s.process.poll() is not None]
            if self.limits is not None and not self.limits.running():
                dead.append(_LIMITS_PROXY)
            return dead

    def describe_exits(self) -> str:
        """How each server in :meth:`exited` ended (exit code, its last log lines); "" if none."""
        with self._lock:
            reports = [describe_exits(self._servers.values())]
            if self.limits is not None and not self.limits.running():
                reports.append(f"{_LIMITS_PROXY} exited")
            return "\n".join(report for report in reports if report)

    @property
    def pids(self) -> dict[str, int]:
        """Server name ("kinesalite", "dynalite", "moto", "limits-proxy") to process id."""
        with self._lock:
            pids = {name: server.process.pid for name, server in self._servers.items()}
            if self.limits is not None and self.limits.pid is not None:
                pids[_LIMITS_PROXY] = self.limits.pid
            return pids

    @property
    def upstream_endpoints(self) -> dict[str, str]:
        """The servers themselves, behind the limits proxy: ``{"kinesis": url, "dynamodb": url}``.

        For reading back what was stored without spending the limits (tests, benchmarks).
        """
        with self._lock:
            if not self._upstream:
                raise LocalBackendError("LocalKinesis is not running: call start() first")
            return dict(self._upstream)

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

    def kinesis_client(self, *, config: Config | None = None) -> KinesisClient:
        """A new boto3 Kinesis client for this server (``config`` is merged over the defaults)."""
        client: KinesisClient = local_client("kinesis", self.kinesis_endpoint, self.region, config)
        return client

    def dynamodb_client(self, *, config: Config | None = None) -> DynamoDBClient:
        """A new boto3 DynamoDB client for this server (``config`` is merged over the defaults)."""
        client: DynamoDBClient = local_client(
            "dynamodb", self.dynamodb_endpoint, self.region, config
        )
        return client

    def __repr__(self) -> str:
        if self._kinesis_endpoint is None:
            return f"LocalKinesis(backend={self.requested_backend!r}, stopped)"
        return (
            f"LocalKinesis(backend={self.backend!r}, kinesis={self._kinesis_endpoint}, "
            f"dynamodb={self._dynamodb_endpoint})"
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
        kinesis: KinesisClient = new_client("kinesis")
        kinesis.create_stream(StreamName=name, ShardCount=shard_count)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 1})
        stack.callback(kinesis.delete_stream, StreamName=name)
        yield name
