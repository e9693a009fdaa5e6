"""The lease table's direct DynamoDB path (``kinesis_actors._aws.direct``) on loopback servers.

Against dynalite: every lease write through the direct path leaves and returns exactly what
botocore's client reads back. Against a recording HTTP server: requests carry a valid SigV4
signature made with credentials botocore refreshed, share one kept-alive connection, and
anything but a plain success is answered by the botocore client (its errors, its retries).
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import botocore.exceptions
import pytest

from kinesis_actors._aws import client_config, new_client
from kinesis_actors._aws.direct import DirectDynamoDB, remember_direct_path
from kinesis_actors._leases import DynamoDBLeaseTable
from kinesis_actors._leases.lease import Lease
from kinesis_actors._models import CompoundSequenceNumber, Sentinel
from kinesis_actors.testing import LocalKinesis

REGION = "us-east-1"


def _credentials(access_key: str, expires_in: timedelta) -> dict[str, str]:
    return {
        "access_key": access_key,
        "secret_key": f"secret-{access_key}",
        "token": f"token-{access_key}",
        "expiry_time": (datetime.now(UTC) + expires_in).isoformat(),
    }


def _direct(
    endpoint: str,
    credentials: botocore.credentials.Credentials | None = None,
    *,
    tries: int = 3,
    user_agent: str = "test",
) -> tuple[Any, DirectDynamoDB]:
    """A botocore client of ``endpoint`` and a direct path beside it."""
    client = new_client(
        "dynamodb",
        region=REGION,
        endpoint_url=endpoint,
        config=client_config(tries=tries, connect_timeout=2),
    )
    credentials = credentials or botocore.credentials.Credentials("AKID", "secret")
    return client, DirectDynamoDB(client, credentials, verify=True, user_agent=user_agent)


def _lease(n: int) -> Lease:
    return Lease(
        f"shardId-{n:012d}",
        None,
        0,
        Sentinel.TRIM_HORIZON,
        starting_hash_key=0,
        ending_hash_key=2**128 - 1,
    )


def test_every_lease_write_leaves_what_botocore_reads_back(
    local_kinesis: LocalKinesis, unique_name: str
) -> None:
    reader = local_kinesis.dynamodb_client()
    writer, direct = _direct(local_kinesis.dynamodb_endpoint)
    remember_direct_path(writer, direct)
    table = DynamoDBLeaseTable(writer, unique_name)
    plain = DynamoDBLeaseTable(reader, unique_name)
    table.create_if_missing()
    assert table.create_lease(_lease(0))

    def matches(written: Lease | None) -> Lease:
        assert written is not None
        assert plain.get_lease(written.shard_id) == written
        return written

    lease = matches(table.take(_lease(0), "worker-a"))
    lease = matches(table.renew(lease, (2048.0, 3.0)))
    lease = matches(table.checkpoint(lease, CompoundSequenceNumber("4" * 56, 7)))
    stale = lease
    lease = matches(table.renew(matches(table.renew(lease))))
    assert table.renew(stale) is None  # the counter moved on by 2: a failed condition, a loss
    handed = matches(table.request_handoff(lease, "worker-b"))
    lease = matches(table.renew(lease))  # a hand-off does not bump the counter...
    assert lease.checkpoint_owner == "worker-a" and lease.owner == "worker-b"  # ...but shows
    assert handed.counter == lease.counter - 1
    assert table.release(lease)
    assert plain.get_lease(lease.shard_id) == matches(plain.get_lease(lease.shard_id))
    assert table.renew(_lease(1)) is None  # no such lease


class _Recorder(BaseHTTPRequestHandler):
    """Answers each POST with the next scripted (status, body); records what arrived."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.server.lock:
            self.server.requests.append((self.client_address[1], dict(self.headers), body))
            status, answer = self.server.script.pop(0) if self.server.script else (200, {})
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amz-crc32", str(zlib.crc32(data)))
        if self.server.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.lock = threading.Lock()
        self.requests: list[tuple[int, dict[str, str], bytes]] = []
        self.script: list[tuple[int, dict[str, Any]]] = []
        self.close_each = False

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server() -> Iterator[_Server]:
    recording = _Server()
    thread = threading.Thread(target=recording.serve_forever, daemon=True)
    thread.start()
    yield recording
    recording.shutdown()
    recording.server_close()
    thread.join(10)


def _signature_is_valid(headers: dict[str, str], body: bytes, url: str, secret: str) -> bool:
    """Recompute the SigV4 signature of a received request from what arrived."""
    authorization = headers["Authorization"]
    credential = authorization.split("Credential=")[1].split(",")[0]
    access_key = credential.split("/")[0]
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={name: headers[next(h for h in headers if h.lower() == name)] for name in signed},
    )
    request.context["timestamp"] = headers["X-Amz-Date"]
    token = headers.get("X-Amz-Security-Token")
    signer = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(access_key, secret, token), "dynamodb", REGION
    )
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    return authorization.endswith(f"Signature={expected}")


def test_requests_are_signed_with_refreshed_credentials_over_one_connection(
    server: _Server,
) -> None:
    refreshed: list[str] = []

    def refresh() -> dict[str, str]:
        refreshed.append("AKIDNEW")
        return _credentials("AKIDNEW", timedelta(hours=1))

    # Expiring within botocore's mandatory refresh window: the first use refreshes them.
    credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
        _credentials("AKIDOLD", timedelta(seconds=30)), refresh, "test"
    )
    client, direct = _direct(server.endpoint, credentials, user_agent="kinesis-actors/test")
    server.script = [(200, {"Attributes": {"leaseKey": {"S": "k"}}})] * 5
    for _ in range(5):
        answer = direct.update_item(client, TableName="t", Key={"leaseKey": {"S": "k"}})
        assert answer == {"Attributes": {"leaseKey": {"S": "k"}}}
    assert refreshed == ["AKIDNEW"]
    ports = {port for port, _, _ in server.requests}
    assert len(server.requests) == 5 and len(ports) == 1  # one kept-alive connection
    for _, headers, body in server.requests:
        assert "Credential=AKIDNEW/" in headers["Authorization"]
        assert headers["X-Amz-Security-Token"] == "token-AKIDNEW"
        assert headers["X-Amz-Target"] == "DynamoDB_20120810.UpdateItem"
        assert headers["User-Agent"] == "kinesis-actors/test"
        assert json.loads(body) == {"TableName": "t", "Key": {"leaseKey": {"S": "k"}}}
        assert _signature_is_valid(headers, body, server.endpoint + "/", "secret-AKIDNEW")


def test_anything_but_a_plain_success_is_answered_by_botocore(server: _Server) -> None:
    client, direct = _direct(server.endpoint, tries=2)
    failed = {
        "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
        "message": "The conditional request failed",
    }
    server.script = [(400, failed), (400, failed)]
    with pytest.raises(botocore.exceptions.ClientError) as error:
        direct.update_item(client, TableName="t", Key={"leaseKey": {"S": "k"}})
    assert error.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert len(server.requests) == 2  # the direct try, then botocore's (which does not retry it)

    server.requests.clear()
    busy = {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "busy"}
    server.script = [(500, busy), (500, busy), (200, {"Attributes": {"n": {"N": "1"}}})]
    answer = direct.update_item(client, TableName="t", Key={"leaseKey": {"S": "k"}})
    assert answer["Attributes"] == {"n": {"N": "1"}}  # botocore retried the 500 and succeeded
    assert len(server.requests) == 3


def test_a_closed_connection_is_replaced_and_no_server_is_botocores_error(
    server: _Server,
) -> None:
    client, direct = _direct(server.endpoint)
    server.close_each = True
    assert [direct.update_item(client, TableName="t") for _ in range(3)] == [{}, {}, {}]
    assert len(server.requests) == 3  # each on a new connection, none sent twice
    assert len({port for port, _, _ in server.requests}) == 3

    nowhere, unreachable = _direct("http://127.0.0.1:9", tries=1)  # discard: nothing listens
    with pytest.raises(botocore.exceptions.EndpointConnectionError):
        unreachable.update_item(nowhere, TableName="t", Key={"leaseKey": {"S": "k"}})


def test_threads_share_kept_alive_connections_up_to_the_pool_size(server: _Server) -> None:
    client = new_client(
        "dynamodb",
        region=REGION,
        endpoint_url=server.endpoint,
        config=client_config(tries=1, max_pool_connections=2),
    )
    direct = DirectDynamoDB(
        client, botocore.credentials.Credentials("AKID", "s"), verify=True, user_agent="test"
    )
    answers: list[dict[str, Any]] = []
    start = threading.Barrier(4)

    def calls() -> None:
        start.wait(10)
        for _ in range(5):
            answers.append(direct.update_item(client, TableName="t"))

    threads = [threading.Thread(target=calls) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert answers == [{}] * 20 and len(server.requests) == 20  # each sent once
    assert len({port for port, _, _ in server.requests}) <= 4  # at most one per thread at once
    assert len(direct._idle) <= 2  # idle connections kept: max_pool_connections
    assert direct.update_item(client, TableName="t") == {}
    assert server.requests[-1][0] in {port for port, _, _ in server.requests[:-1]}  # reused


def test_a_refusal_botocore_does_not_share_turns_the_direct_path_off(
    server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    client, direct = _direct(server.endpoint, tries=1, user_agent="direct")

    def update() -> dict[str, Any]:
        answer = direct.update_item(client, TableName="t", Key={"leaseKey": {"S": "k"}})
        answer.pop("ResponseMetadata", None)  # botocore's answers carry it
        return answer

    def agents() -> list[bool]:  # per request: sent by the direct path?
        return [headers["User-Agent"] == "direct" for _, headers, _ in server.requests]

    throttled = {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "slow down",
    }
    server.script = [(400, throttled), (200, {})]  # a throttle is transient: the path stays on
    assert update() == {}
    server.script = [(400, {"__type": "com.amazon.coral.service#InvalidSignatureException"})]
    assert update() == {}  # botocore's try succeeded where the direct one was refused
    assert agents() == [True, False, True, False]
    server.requests.clear()
    assert [update() for _ in range(3)] == [{}, {}, {}]
    assert agents() == [False, False, False]  # each sent once, by botocore
