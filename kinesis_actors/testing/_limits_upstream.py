"""The limits proxy's side towards kinesalite and dynalite: forwarding, shard routes, iterators.

Everything here is what the proxy must learn from, or send to, the real local servers: the HTTP
forwarding itself (one keep-alive connection per proxy thread), the open shards' hash ranges of
each stream (to route PutRecords entries as Kinesis does, by MD5 of the partition key), and which
shard an opaque shard iterator belongs to.
"""

from __future__ import annotations

import bisect
import hashlib
import http.client
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["IteratorShards", "Reply", "ShardRoutes", "Upstream", "hash_key"]

#: Headers that belong to one connection (or that the proxy sets itself): never forwarded.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "content-length",
        "date",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Node's HTTP server closes idle keep-alive connections after 5 s: reconnect before that.
_IDLE_RECONNECT_S: Final = 4.0
#: Iterators live 5 minutes on AWS; keep the mapping a little longer, then forget it.
_ITERATOR_TTL_S: Final = 330.0


@dataclass
class Reply:
    """An HTTP answer: status, headers (without Content-Length) and body."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def hash_key(partition_key: str, explicit_hash_key: str | None) -> int:
    """The 128-bit hash key Kinesis routes a record by."""
    if explicit_hash_key:
        return int(explicit_hash_key)
    return int.from_bytes(hashlib.md5(partition_key.encode()).digest(), "big")


class _Connection:
    __slots__ = ("conn", "used")

    def __init__(self, conn: http.client.HTTPConnection) -> None:
        self.conn = conn
        self.used = 0.0


class Upstream:
    """One local server (``http://127.0.0.1:PORT``), called with one connection per thread."""

    def __init__(self, endpoint: str, target_prefix: str, timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.hostname is None or parsed.port is None:
            raise ValueError(f"upstream endpoint needs a host and a port: {endpoint!r}")
        self.endpoint = endpoint
        self.target_prefix = target_prefix
        self._address = (parsed.hostname, parsed.port)
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> tuple[_Connection, bool]:
        current: _Connection | None = getattr(self._local, "connection", None)
        if current is not None and time.monotonic() - current.used < _IDLE_RECONNECT_S:
            return current, True
        if current is not None:
            current.conn.close()
        host, port = self._address
        current = _Connection(http.client.HTTPConnection(host, port, timeout=self._timeout))
        self._local.connection = current
        return current, False

    def forward(self, body: bytes, headers: list[tuple[str, str]]) -> Reply:
        """POST ``body`` with the client's headers; hop-by-hop headers are dropped both ways."""
        sent = {name: value for name, value in headers if name.lower() not in _HOP_BY_HOP}
        sent["Content-Length"] = str(len(body))
        connection, reused = self._connection()
        try:
            connection.conn.request("POST", "/", body=body, headers=sent)
            response = connection.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # the server closed a kept-alive connection before reading the request: resend once
            connection.conn.close()
            self._local.connection = None
            if not reused:
                raise
            return self.forward(body, headers)
        data = response.read()
        connection.used = time.monotonic()
        kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        return Reply(response.status, kept, data)

    def call(self, operation: str, payload: dict[str, Any]) -> Reply:
        """The proxy's own call (not counted, not limited), e.g. ``ListShards``."""
        content_type = (
            "application/x-amz-json-1.0"
            if self.target_prefix.startswith("DynamoDB")
            else "application/x-amz-json-1.1"
        )
        headers = [
            ("X-Amz-Target", f"{self.target_prefix}.{operation}"),
            ("Content-Type", content_type),
            # the emulators want a signed request's shape, not a valid signature
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=limits/20000101/us-east-1/x/aws4_request, "
                "SignedHeaders=host, Signature=0",
            ),
            ("X-Amz-Date", "20000101T000000Z"),
        ]
        return self.forward(json.dumps(payload).encode(), headers)


@dataclass(frozen=True)
class _Routes:
    ends: list[int]
    shard_ids: list[str]

    def shard_for(self, key: int) -> str:
        return self.shard_ids[min(bisect.bisect_left(self.ends, key), len(self.ends) - 1)]


class ShardRoutes:
    """Open shards' hash ranges per stream, from ListShards upstream, cached until invalidated."""

    def __init__(self, kinesis: Upstream) -> None:
        self._kinesis = kinesis
        self._lock = threading.Lock()
        self._streams: dict[str, _Routes] = {}
        #: ListShards refreshes done (first look-ups and after invalidations).
        self.refreshes = 0

    def shard_for(self, stream: str, key: int) -> str | None:
        """The open shard of ``stream`` whose range holds ``key``; None if the stream is unknown."""
        with self._lock:
            routes = self._streams.get(stream)
        if routes is None:
            routes = self._load(stream)
            if routes is None:
                return None
        return routes.shard_for(key)

    def invalidate(self, stream: str) -> None:
        with self._lock:
            self._streams.pop(stream, None)

    def _load(self, stream: str) -> _Routes | None:
        shards: list[dict[str, Any]] = []
        payload: dict[str, Any] = {"StreamName": stream}
        while True:
            reply = self._kinesis.call("ListShards", payload)
            if reply.status != 200:
                return None
            answer = reply.json()
            shards.extend(answer.get("Shards", []))
            token = answer.get("NextToken")
            if not token:
                break
            payload = {"NextToken": token}
        open_shards = sorted(
            (int(shard["HashKeyRange"]["EndingHashKey"]), shard["ShardId"])
            for shard in shards
            if "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})
        )
        if not open_shards:
            return None
        routes = _Routes([end for end, _ in open_shards], [shard for _, shard in open_shards])
        with self._lock:
            self._streams[stream] = routes
            self.refreshes += 1
        return routes


class IteratorShards:
    """Which (stream, shard) an opaque shard iterator reads, learnt from the answers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shards: dict[str, tuple[str, str, float]] = {}
        self._next_prune = time.monotonic() + _ITERATOR_TTL_S

    def remember(self, iterator: str, stream: str, shard: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._shards[iterator] = (stream, shard, now)
            if now >= self._next_prune:
                cutoff = now - _ITERATOR_TTL_S
                self._shards = {k: v for k, v in self._shards.items() if v[2] >= cutoff}
                self._next_prune = now + _ITERATOR_TTL_S

    def lookup(self, iterator: str) -> tuple[str, str] | None:
        with self._lock:
            found = self._shards.get(iterator)
        return None if found is None else (found[0], found[1])
