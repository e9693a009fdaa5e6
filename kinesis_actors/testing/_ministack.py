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
import http.client
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
from kinesis_actors._logging import get_logger
from kinesis_actors.testing._processes import LOOPBACK, free_port, local_client

if TYPE_CHECKING:
    from types import TracebackType

    from mypy_boto3_kinesis import KinesisClient

__all__ = ["MINISTACK_VERSION", "LocalMinistack"]

#: The version whose behaviour ``docs/fanout.rst`` describes (the ``test`` extra pins it).
MINISTACK_VERSION: Final = "1.5.33"

_READY_PATH: Final = "/_ministack/ready"
_PORT_ATTEMPTS: Final = 3
#: ministack's entry point with its subscription lifetime (a module constant) set from argv[1].
_BOOT_WITH_LIFETIME: Final = (
    "import sys\n"
    "import ministack.services.kinesis as kinesis\n"
    "kinesis.SUBSCRIPTION_SECONDS = float(sys.argv.pop(1))\n"
    "from ministack.app import main\n"
    "main()\n"
)

log = get_logger(__name__)


def _ready(port: int) -> bool:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=0.5)
    try:
        connection.request("GET", _READY_PATH)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class LocalMinistack:
    """ministack's Kinesis on loopback, as a context manager; :meth:`stop` ends the process.

    Args:
        port: Port to bind; 0 picks a free one.
        region: Region of the clients (ministack answers for any).
        startup_timeout: Seconds to wait for ``/_ministack/ready``.
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
        self._port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> LocalMinistack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> LocalMinistack:
        """Start ministack and wait until it is ready; a no-op while running."""
        if self._process is not None:
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
        try:
            self._launch(Path(self._workdir.name))
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, workdir: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = self._requested_port or free_port()
            log_path = workdir / f"ministack-{port}.log"
            env = {
                **os.environ,
                "TMPDIR": str(workdir),  # its pid file and logs
                "BIND_HOST": LOOPBACK,
                "GATEWAY_PORT": str(port),
                "SERVICES": "kinesis",
                "IOT_MTLS_ENABLED": "0",  # else an MQTT listener on 0.0.0.0:8883
                "SFTP_ENABLED": "0",
                "LOG_LEVEL": "WARNING",
            }
            with log_path.open("ab") as sink:
                process = subprocess.Popen(
                    self._argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                )
            self._process = process
            while process.poll() is None and time.monotonic() < deadline:
                if _ready(port):
                    self._port = port
                    log.info("ministack ready", port=port, pid=process.pid)
                    return
                time.sleep(0.05)
            exited = process.poll() is not None
            self._terminate()
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            if exited and not self._requested_port and attempt < _PORT_ATTEMPTS:
                log.info("ministack exited at start; retrying on another port", port=port)
                continue
            problem = "exited" if exited else "no answer before the startup timeout"
            raise LocalBackendError(
                f"ministack did not start on {LOOPBACK}:{port}: {problem}\n{tail}"
            )

    def _argv(self) -> list[str]:
        if self._subscription_seconds is None:
            return [sys.executable, "-m", "ministack"]
        return [sys.executable, "-c", _BOOT_WITH_LIFETIME, str(self._subscription_seconds)]

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(self.stop_timeout)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and remove its folder. Idempotent."""
        self._terminate()
        self._port = None
        if self._workdir is not None:
            with contextlib.suppress(OSError):
                self._workdir.cleanup()
            self._workdir = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def endpoint(self) -> str:
        """Kinesis endpoint URL, e.g. ``http://127.0.0.1:45123``."""
        if self._port is None:
            raise LocalBackendError("LocalMinistack is not running: call start() first")
        return f"http://{LOOPBACK}:{self._port}"

    def kinesis_client(self, *, config: Config | None = None) -> KinesisClient:
        """A new boto3 Kinesis client for this server (``config`` is merged over the defaults)."""
        client: KinesisClient = local_client("kinesis", self.endpoint, self.region, config)
        return client

    def __repr__(self) -> str:
        state = self.endpoint if self._port is not None else "stopped"
        return f"LocalMinistack({state})"
