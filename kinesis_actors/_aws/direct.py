"""Lease renewals sent without botocore's request pipeline (and every other call through it).

A consumer renews each lease it holds every ``failover / 3`` with one conditional UpdateItem:
60 calls a second for 200 leases at the default 10 s, about 0.9 ms of CPU each through
botocore (its HTTP layers, request objects, event hooks, endpoint rules and parser), over
5 % of a core for a consumer that reads nothing. `DirectDynamoDB` sends the same request for
less than half of that: the JSON body, signed by botocore's own ``SigV4Auth`` with the session's
credentials (``get_frozen_credentials`` refreshes them as botocore does), posted over kept-alive
``http.client`` connections (as many kept idle as the client's ``max_pool_connections``) to the
client's endpoint (``client.meta.endpoint_url``: the configured one, or the regional, FIPS or
dual-stack endpoint botocore resolved; not an account-based one, which only routes), with the
client's timeouts and botocore's CA bundle.

Only a plain success is answered here (HTTP 200 whose CRC32 matches, as botocore checks for
DynamoDB). Any other status, a connection error or a timeout sends the call once more through the
botocore client, which then retries, parses and raises as it always does, so the library's error
translation and retry rules are unchanged (a retried conditional write is recognised by the
lease code's re-read, as after a botocore retry). If botocore succeeds where the direct request
got a 4xx other than a throttle or a failed condition (a signature or a request this path got
wrong for that endpoint), the path turns itself off with one warning: the lease writes then all
go through botocore, never sent twice each.

`direct_dynamodb` builds one only where it cannot differ from the botocore client: no proxy
(``Config.proxies``, ``proxies_config`` or the environment's, which stay botocore's to handle),
no client certificate, and nothing that wants to see or answer each request: no client hook
(fault injection, instrumentation) and no ``before-send`` handler registered with botocore
itself (moto, stubs).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import threading
import weakref
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.handlers
import botocore.httpsession
import botocore.session
import botocore.utils

from kinesis_actors._logging import get_logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["DirectDynamoDB", "direct_dynamodb", "direct_path_of", "remember_direct_path"]

log = get_logger(__name__)

#: Error types of a 400 that say "try again later", not "this request is wrong".
_TRANSIENT_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "TransactionConflictException",
    }
)


class _Refused:
    """A 4xx answer to the direct request that is neither a throttle nor a conditional check."""


_REFUSED = _Refused()

_PATHS: weakref.WeakKeyDictionary[Any, DirectDynamoDB] = weakref.WeakKeyDictionary()


class DirectDynamoDB:
    """UpdateItem on one DynamoDB endpoint, signed and sent directly; botocore for the rest.

    Thread-safe: threads share a pool of kept-alive connections. Built from the botocore
    ``client``'s endpoint, region, service model, timeouts and pool size, it keeps no reference
    to it (the registry of `remember_direct_path` holds clients weakly); each call is given the
    client that answers anything but a plain success.
    """

    def __init__(
        self,
        client: DynamoDBClient,
        credentials: botocore.credentials.Credentials,
        *,
        verify: bool | str,
        user_agent: str,
    ) -> None:
        meta = client.meta
        config: Any = meta.config  # botocore's stubs lack most of Config's attributes
        self._credentials = credentials
        self._url = meta.endpoint_url.rstrip("/") + "/"
        parts = urlsplit(self._url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path or "/"
        self._region = meta.region_name
        model = meta.service_model
        self._signing_name = model.signing_name
        self._target_prefix = model.metadata["targetPrefix"]
        self._content_type = f"application/x-amz-json-{model.metadata['jsonVersion']}"
        self._user_agent = user_agent
        self._connect_timeout: float = config.connect_timeout
        self._read_timeout: float = config.read_timeout
        self._context = _ssl_context(verify) if self._https else None
        self._max_idle: int = config.max_pool_connections
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []  # last released, first reused
        #: Set when botocore succeeded where the direct request was refused: from then on every
        #: call goes through botocore (this path differs from it somewhere, e.g. in signing).
        self._off = False

    def update_item(self, client: DynamoDBClient, **params: Any) -> dict[str, Any]:
        """What ``client.update_item(**params)`` returns (without ``ResponseMetadata`` when
        answered directly), or raises; ``client`` is the one this path was built from."""
        try:
            body = json.dumps(params).encode()
        except TypeError:  # bytes (a B attribute): botocore's serialiser encodes them
            body = None
        answer = (
            None
            if body is None or self._off
            else self._post(f"{self._target_prefix}.UpdateItem", body)
        )
        if answer is None or answer is _REFUSED:
            result = dict(client.update_item(**params))
            if answer is _REFUSED and not self._off:
                self._off = True
                log.warning(
                    "the direct DynamoDB path was refused where botocore succeeded: "
                    "lease writes go through botocore from now on",
                    endpoint=self._url,
                )
            return result
        assert isinstance(answer, dict)
        if "Attributes" in answer:
            answer["Attributes"] = {k: _decoded(v) for k, v in answer["Attributes"].items()}
        return answer

    def _post(self, target: str, body: bytes) -> dict[str, Any] | _Refused | None:
        """The parsed answer to a plain success; `_REFUSED` for a 4xx that botocore may answer
        differently (see `update_item`); else None."""
        request = botocore.awsrequest.AWSRequest(
            method="POST",
            url=self._url,
            data=body,
            headers={
                "X-Amz-Target": target,
                "Content-Type": self._content_type,
                "User-Agent": self._user_agent,
            },
        )
        signer = botocore.auth.SigV4Auth(
            self._credentials.get_frozen_credentials(), self._signing_name, self._region
        )
        signer.add_auth(request)
        connection = None
        try:
            connection = self._acquire()
            connection.request("POST", self._path, body=body, headers=dict(request.headers.items()))
            response = connection.getresponse()
            data = response.read()
            crc32 = response.getheader("x-amz-crc32")
            intact = crc32 is None or int(crc32) == zlib.crc32(data)
            parsed: dict[str, Any] = json.loads(data) if intact else {}
        except (OSError, http.client.HTTPException, ValueError):
            if connection is not None:
                connection.close()
            return None
        if response.will_close or not intact:
            connection.close()
        else:
            self._release(connection)
        if response.status == 200 and intact:
            return parsed
        if 400 <= response.status < 500 and intact:
            error_type = str(parsed.get("__type", "")).rpartition("#")[2]
            if error_type not in _TRANSIENT_ERRORS | {"ConditionalCheckFailedException"}:
                return _REFUSED
        return None

    def _acquire(self) -> http.client.HTTPConnection:
        """An idle kept-alive connection, else a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        connection: http.client.HTTPConnection
        if self._context is not None:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._connect_timeout, context=self._context
            )
        else:
            connection = http.client.HTTPConnection(
                self._host, self._port, timeout=self._connect_timeout
            )
        connection.connect()
        if connection.sock is not None:
            connection.sock.settimeout(self._read_timeout)
        return connection

    def _release(self, connection: http.client.HTTPConnection) -> None:
        """Keep ``connection`` for the next call, up to the client's ``max_pool_connections``."""
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(connection)
                return
        connection.close()


def _decoded(value: dict[str, Any]) -> dict[str, Any]:
    """An AttributeValue as botocore parses it: binary (B, BS) base64-decoded, at any depth."""
    if "B" in value:
        return {"B": base64.b64decode(value["B"])}
    if "BS" in value:
        return {"BS": [base64.b64decode(member) for member in value["BS"]]}
    if "M" in value:
        return {"M": {k: _decoded(v) for k, v in value["M"].items()}}
    if "L" in value:
        return {"L": [_decoded(member) for member in value["L"]]}
    return value


def _ssl_context(verify: bool | str) -> ssl.SSLContext:
    """A TLS context that trusts what botocore's would for ``verify``: its default bundle
    (certifi's when installed), a CA bundle file or folder, or nothing checked (False)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    path = str(botocore.httpsession.get_cert_path(True) if verify is True else verify)
    if Path(path).is_dir():
        return ssl.create_default_context(capath=path)
    return ssl.create_default_context(cafile=path)


def direct_dynamodb(
    client: DynamoDBClient, session: boto3.Session, *, verify: bool | str | None, user_agent: str
) -> DirectDynamoDB | None:
    """A direct path beside ``client`` (made from ``session`` with ``verify``), or None where it
    could differ from the client: a proxy or client certificate, no credentials, or a
    ``before-send`` handler registered with botocore (moto, a stub). Client hooks are the
    caller's to check (`kinesis_actors._aws.clients`)."""
    config: Any = client.meta.config
    if config.proxies or config.proxies_config or config.client_cert:
        return None
    if botocore.utils.get_environ_proxies(client.meta.endpoint_url):
        return None
    if any(event.startswith("before-send") for event, *_ in botocore.handlers.BUILTIN_HANDLERS):
        return None
    credentials = session.get_credentials()
    if credentials is None:
        return None
    return DirectDynamoDB(
        client, credentials, verify=_resolved_verify(session, verify), user_agent=user_agent
    )


def _resolved_verify(session: boto3.Session, verify: bool | str | None) -> bool | str:
    """``verify`` as botocore resolves it for a client: the argument, else the profile's or
    ``AWS_CA_BUNDLE``'s ``ca_bundle``, else ``REQUESTS_CA_BUNDLE``, else the default bundle."""
    if verify is not None:
        return verify
    profile = session.profile_name if session.profile_name != "default" else None
    bundle = botocore.session.Session(profile=profile).get_config_variable("ca_bundle")
    if bundle:
        return str(bundle)
    return os.environ.get("REQUESTS_CA_BUNDLE") or True


def remember_direct_path(client: Any, direct: DirectDynamoDB | None) -> None:
    """Keep ``direct`` as ``client``'s direct path (for as long as the client lives)."""
    if direct is not None:
        _PATHS[client] = direct


def direct_path_of(client: Any) -> DirectDynamoDB | None:
    """The direct path built beside ``client`` by the consumer's client factory, if any."""
    try:
        return _PATHS.get(client)
    except TypeError:  # not weakly referenceable: not a botocore client (a test's double)
        return None
