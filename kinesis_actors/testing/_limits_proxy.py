"""The limits mode: a loopback proxy in front of kinesalite and dynalite that enforces AWS's limits.

kinesalite and dynalite never throttle and answer at loopback speed, so pacing, throttling and
capacity cannot be seen against them. Every client (every process) goes through this one proxy,
so a shard's limit is shared by all its readers and writers, as on AWS. One port serves both
services (told apart by ``X-Amz-Target``); ``GET /_limits/stats`` returns the counters as JSON.

In-process::

    with LimitsProxy(kinesis_endpoint, dynamodb_endpoint, latency_ms=20) as proxy:
        client = boto3.client("kinesis", endpoint_url=proxy.endpoint, ...)
        ...
        print(proxy.stats().table())

As a process (what ``LocalKinesis(aws_limits=True)`` runs; prints the counters at exit)::

    python -m kinesis_actors.testing._limits_proxy --kinesis URL --dynamodb URL --port 0
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Final

from kinesis_actors._lifecycle import StartedOnEnter
from kinesis_actors.testing._limits_dynamodb import DynamoDBLimits, dynamodb_error
from kinesis_actors.testing._limits_kinesis import KinesisLimits, kinesis_error
from kinesis_actors.testing._limits_model import AwsLimits, LimitModel
from kinesis_actors.testing._limits_stats import STATS_PATH, LimitsCounters, LimitsStats
from kinesis_actors.testing._limits_upstream import Reply, Upstream

if TYPE_CHECKING:
    from types import FrameType

__all__ = ["LimitsProxy", "main"]

_KINESIS_PREFIX: Final = "Kinesis_20131202"
_DYNAMODB_PREFIX: Final = "DynamoDB_20120810"
_LOOPBACK: Final = "127.0.0.1"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: LimitsProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        reply = self.server.proxy.answer(
            self.headers.get("X-Amz-Target", ""), body, list(self.headers.items())
        )
        self._send(reply)

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != STATS_PATH:
            self._send(Reply(404, [("Content-Type", "text/plain")], b"not found\n"))
            return
        document = json.dumps(self.server.proxy.stats().to_json()).encode()
        self._send(Reply(200, [("Content-Type", "application/json")], document))

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the counters are the record of what happened."""


class LimitsProxy(StartedOnEnter):
    """AWS's Kinesis and DynamoDB limits on loopback, in front of two local servers.

    Args:
        kinesis_endpoint: kinesalite, ``http://127.0.0.1:PORT``.
        dynamodb_endpoint: dynalite, ``http://127.0.0.1:PORT``.
        limits: the numbers to enforce (default: AWS's documented limits).
        latency_ms: added to every call before it is answered (refused ones too).
        port: where the proxy listens on 127.0.0.1; 0 picks a free port.
    """

    def __init__(
        self,
        kinesis_endpoint: str,
        dynamodb_endpoint: str,
        *,
        limits: AwsLimits | None = None,
        latency_ms: float = 0.0,
        port: int = 0,
    ) -> None:
        if not latency_ms >= 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms!r}")
        self.model = LimitModel(limits)
        self.latency_s = latency_ms / 1000.0
        self._counters = LimitsCounters()
        self._kinesis = KinesisLimits(
            Upstream(kinesis_endpoint, _KINESIS_PREFIX), self.model, self._counters
        )
        self._dynamodb = DynamoDBLimits(
            Upstream(dynamodb_endpoint, _DYNAMODB_PREFIX), self.model, self._counters
        )
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> LimitsProxy:
        """Listen and serve on a daemon thread (no-op if already serving)."""
        if self._server is None:
            server = _Server((_LOOPBACK, self._port), _Handler)
            server.proxy = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
            )
            self._thread.name = f"limits-proxy-{self.port}"
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LimitsProxy is not running: call start() first")
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``: the endpoint for both Kinesis and DynamoDB clients."""
        return f"http://{_LOOPBACK}:{self.port}"

    def stats(self) -> LimitsStats:
        """A snapshot of the counters (calls, refusals, throttled entries per API)."""
        return self._counters.snapshot()

    # -- answering -------------------------------------------------------------------------------

    def answer(self, target: str, body: bytes, headers: list[tuple[str, str]]) -> Reply:
        """The reply to one request, after the configured latency."""
        if self.latency_s:
            time.sleep(self.latency_s)
        prefix, _, operation = target.partition(".")
        try:
            if prefix == _DYNAMODB_PREFIX:
                return self._dynamodb.handle(operation, body, headers)
            return self._kinesis.handle(operation, body, headers)
        except OSError as exc:  # the server behind is gone: answer as AWS does on a fault
            message = f"limits proxy: upstream failed: {exc}"
            if prefix == _DYNAMODB_PREFIX:
                reply = dynamodb_error("InternalServerError", message)
                reply.status = 500
                return reply
            return kinesis_error("InternalFailure", message, status=500)


def _stop_with_parent(stopped: threading.Event) -> None:
    parent = os.getppid()
    while os.getppid() == parent and not stopped.wait(1.0):
        pass
    stopped.set()


def main(argv: list[str] | None = None) -> int:
    """Run the proxy until SIGTERM or SIGINT, then print the counters."""
    parser = argparse.ArgumentParser(prog="python -m kinesis_actors.testing._limits_proxy")
    parser.add_argument("--kinesis", required=True, help="kinesalite endpoint URL")
    parser.add_argument("--dynamodb", required=True, help="dynalite endpoint URL")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: free)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every call")
    parser.add_argument(
        "--dynamodb-burst-seconds",
        type=float,
        default=AwsLimits.dynamodb_burst_seconds,
        help="unused provisioned capacity a table keeps (AWS: up to 300 s)",
    )
    args = parser.parse_args(argv)
    limits = AwsLimits(dynamodb_burst_seconds=args.dynamodb_burst_seconds)
    stopped = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    if os.environ.get("KINESIS_ACTORS_EXIT_WITH_PARENT") == "1":
        threading.Thread(target=_stop_with_parent, args=(stopped,), daemon=True).start()
    proxy = LimitsProxy(
        args.kinesis, args.dynamodb, limits=limits, latency_ms=args.latency_ms, port=args.port
    )
    with proxy:
        print(f"limits proxy listening on {proxy.endpoint}", flush=True)
        while not stopped.wait(0.5):
            pass
        print(proxy.stats().table(), flush=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
