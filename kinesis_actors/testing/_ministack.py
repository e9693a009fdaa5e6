"""ministack (pip) on a free loopback port: the local Kinesis that serves enhanced fan-out.

kinesalite has no SubscribeToShard, no UpdateShardCount and no ``ChildShards``; ministack has
all three, in pure Python, from PyPI (pinned in the ``test`` extra). Only its Kinesis service is
started (leases stay on dynalite), bound to 127.0.0.1, with its IoT mTLS and SFTP listeners off.
It deviates from AWS in ways a test must know (no throttling, a split deletes the parent shard
and its unread records, UpdateShardCount rebuilds the stream, consumers are ACTIVE at once):
``docs/fanout.rst`` lists what was measured.

Example::

    with LocalMinistack() as ministack:
        kinesis = ministack.kinesis_client()
        kinesis.create_stream(StreamName="demo", ShardCount=2)
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final

from botocore.config import Config

from kinesis_actors._errors import LocalBackendError
from kinesis_actors._lifecycle import StartedOnEnter
from kinesis_actors._logging import get_logger
from kinesis_actors.testing._backends import KINESIS_PROBE
from kinesis_actors.testing._processes import (
    LOOPBACK,
    Server,
    ServerSpec,
    describe_exits,
    local_client,
    start_servers,
    terminate,
)

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["MINISTACK_VERSION", "LocalMinistack"]

#: The version whose behaviour ``docs/fanout.rst`` describes (the ``test`` extra pins it).
MINISTACK_VERSION: Final = "1.5.33"

#: ministack's entry point, its port (read from the environment) and its subscription lifetime
#: (a module constant; "" keeps ministack's own) set from argv[1] and argv[2].
_BOOT: Final = (
    "import os, sys\n"
    "os.environ['GATEWAY_PORT'] = sys.argv.pop(1)\n"
    "lifetime = sys.argv.pop(1)\n"
    "if lifetime:\n"
    "    import ministack.services.kinesis as kinesis\n"
    "    kinesis.SUBSCRIPTION_SECONDS = float(lifetime)\n"
    "from ministack.app import main\n"
    "main()\n"
)

log = get_logger(__name__)


def ministack_spec(
    workdir: Path, port: int = 0, subscription_seconds: float | None = None
) -> ServerSpec:
    """ministack's Kinesis only, on ``127.0.0.1:port``, its files in ``workdir``."""
    lifetime = "" if subscription_seconds is None else str(subscription_seconds)

    def argv(chosen: int) -> list[str]:
        return [sys.executable, "-c", _BOOT, str(chosen), lifetime]

    env = {
        "TMPDIR": str(workdir),  # its pid file and logs
        "BIND_HOST": LOOPBACK,
        "SERVICES": "kinesis",
        "IOT_MTLS_ENABLED": "0",  # else an MQTT listener on 0.0.0.0:8883
        "SFTP_ENABLED": "0",
        "LOG_LEVEL": "WARNING",
    }
    return ServerSpec("ministack", argv, KINESIS_PROBE, ("kinesis",), port, env)


class LocalMinistack(StartedOnEnter):
    """ministack's Kinesis on loopback, as a context manager; :meth:`stop` ends the process.

    Args:
        port: Port to bind; 0 picks a free one.
        region: Region of the clients (ministack answers for any).
        startup_timeout: Seconds to wait until its Kinesis answers.
        stop_timeout: Seconds between SIGTERM and SIGKILL.
        subscription_seconds: Lifetime of a SubscribeToShard subscription (AWS and ministack:
            300 s); shorter lets a test see subscriptions end and be renewed.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        region: str = "us-east-1",
        startup_timeout: float = 30.0,
        stop_timeout: float = 5.0,
        subscription_seconds: float | None = None,
    ) -> None:
        self.region = region
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._requested_port = port
        self._subscription_seconds = subscription_seconds
        self._server: Server | None = None
        self._processes: list[subprocess.Popen[bytes]] = []
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def start(self) -> LocalMinistack:
        """Start ministack and wait until it is ready; a no-op while running."""
        if self._server is not None:
            return self
        if importlib.util.find_spec("ministack") is None:
            raise LocalBackendError(
                f"ministack is not installed: pip install 'ministack=={MINISTACK_VERSION}' "
                "(it is part of the kinesis-actors[test] extra)"
            )
        version = importlib.metadata.version("ministack")
        if version != MINISTACK_VERSION:
            log.warning(
                "ministack version differs from the one measured",
                installed=version,
                measured=MINISTACK_VERSION,
            )
        self._workdir = tempfile.TemporaryDirectory(prefix="kinesis-actors-ministack-")
        workdir = Path(self._workdir.name)
        spec = ministack_spec(workdir, self._requested_port, self._subscription_seconds)
        try:
            servers = start_servers(
                [spec],
                os.environ,
                processes=self._processes,
                log_dir=workdir,
                deadline=time.monotonic() + self.startup_timeout,
                stop_timeout=self.stop_timeout,
            )
        except BaseException:
            self.stop()
            raise
        self._server = servers[spec.name]
        log.info("ministack ready", port=self._server.port, pid=self._server.process.pid)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its folder. Idempotent."""
        terminate(self._processes, self.stop_timeout)
        self._server = None
        if self._workdir is not None:
            with contextlib.suppress(OSError):
                self._workdir.cleanup()
            self._workdir = None

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.process.poll() is None

    def describe_exits(self) -> str:
        """How the server ended if it exited (exit code, last lines of its log); "" if running."""
        return describe_exits([self._server] if self._server is not None else [])

    @property
    def pid(self) -> int | None:
        return self._server.process.pid if self._server is not None else None

    @property
    def endpoint(self) -> str:
        """Kinesis endpoint URL, e.g. ``http://127.0.0.1:45123``."""
        if self._server is None:
            raise LocalBackendError("LocalMinistack is not running: call start() first")
        return self._server.endpoint

    def kinesis_client(self, *, config: Config | None = None) -> KinesisClient:
        """A new boto3 Kinesis client for this server (``config`` is merged over the defaults)."""
        client: KinesisClient = local_client("kinesis", self.endpoint, self.region, config)
        return client

    def __repr__(self) -> str:
        state = self.endpoint if self._server is not None else "stopped"
        return f"LocalMinistack({state})"
