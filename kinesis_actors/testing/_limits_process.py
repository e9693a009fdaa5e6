"""The limits proxy in its own process, so that its work never competes with the clients' GIL.

Tests and benchmarks measure clients through the proxy; run in-process, the proxy's threads
would slow those very clients down. :class:`LimitsProxyProcess` starts
``python -m kinesis_actors.testing._limits_proxy``, reads the endpoint it prints, serves the
counters from ``GET /_limits/stats`` and keeps the table the proxy prints at exit.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from typing import IO, TYPE_CHECKING, Final

from kinesis_actors._errors import LocalBackendError
from kinesis_actors._lifecycle import StartedOnEnter
from kinesis_actors.testing._limits_stats import LimitsStats, fetch_stats

if TYPE_CHECKING:
    pass

__all__ = ["LimitsProxyProcess"]

_READY_PREFIX: Final = "limits proxy listening on "
# ``-m`` would warn: the package ``kinesis_actors.testing`` already imports the proxy module.
_BOOT: Final = "import sys; from kinesis_actors.testing._limits_proxy import main; sys.exit(main())"


class LimitsProxyProcess(StartedOnEnter):
    """``LimitsProxy`` as a child process; see that class for the arguments."""

    def __init__(
        self,
        kinesis_endpoint: str,
        dynamodb_endpoint: str,
        *,
        latency_ms: float = 0.0,
        port: int = 0,
        dynamodb_burst_seconds: float | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        self._argv = [
            sys.executable,
            "-c",
            _BOOT,
            "--kinesis",
            kinesis_endpoint,
            "--dynamodb",
            dynamodb_endpoint,
            "--port",
            str(port),
            "--latency-ms",
            str(latency_ms),
        ]
        if dynamodb_burst_seconds is not None:
            self._argv += ["--dynamodb-burst-seconds", str(dynamodb_burst_seconds)]
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen[str] | None = None
        self._endpoint: str | None = None
        #: The counters table the proxy printed when it stopped (after :meth:`stop`).
        self.exit_report: str = ""

    def start(self) -> LimitsProxyProcess:
        if self._process is not None:
            return self
        env = dict(os.environ, KINESIS_ACTORS_EXIT_WITH_PARENT="1")
        process = subprocess.Popen(
            self._argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self._process = process
        lines: list[str] = []
        deadline = time.monotonic() + self._startup_timeout
        while line := _read_line(process, deadline):
            if line.startswith(_READY_PREFIX):
                self._endpoint = line[len(_READY_PREFIX) :].strip()
                return self
            lines.append(line)
        self.stop()
        output = "".join(lines).strip() or "no output"
        raise LocalBackendError(f"the limits proxy did not start: {output}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; keeps what the proxy printed in :attr:`exit_report`."""
        process, self._process = self._process, None
        self._endpoint = None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        self.exit_report = output.strip()

    @property
    def endpoint(self) -> str:
        if self._endpoint is None:
            raise LocalBackendError("the limits proxy is not running: call start() first")
        return self._endpoint

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stats(self) -> LimitsStats:
        """The proxy's counters now."""
        return fetch_stats(self.endpoint)


def _read_line(process: subprocess.Popen[str], deadline: float) -> str:
    """The child's next line of output, or "" if it printed none before ``deadline``."""
    stream: IO[str] | None = process.stdout
    if stream is None:
        return ""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=0.1):
                return stream.readline()
            if process.poll() is not None:
                return ""
    return ""
