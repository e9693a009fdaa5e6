"""The AWS boundary: boto3 clients, credentials, error codes, the throttling test, pagination.

Every boto3 client of the package is created by :func:`new_client` (the producer's and the
consumer's from their settings, the command line's and the local servers' from an endpoint).
The engines retry by their own rules (the KPL's time-based retries, the KCL's lease semantics),
so clients are created with botocore retries set explicitly. Note that botocore's
``max_attempts`` counts retries, not tries; this module speaks in total tries.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.credentials
import botocore.exceptions
import botocore.session
import urllib3.exceptions
from botocore.eventstream import ParserError
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.exceptions import HTTPClientError
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER, ResponseParserFactory

from kinesis_actors._config._credentials import (
    AssumeRoleConf,
    CredentialsProvider,
    parse_provider,
)
from kinesis_actors._errors import ConfigError
from kinesis_actors._logging import get_logger
from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import ShardFilterTypeDef, ShardTypeDef

    from kinesis_actors._config import KclConf, KplConf

__all__ = [
    "FATAL_PUT_ERROR_CODES",
    "THROTTLING_CODES",
    "ClientHook",
    "Subscription",
    "add_client_hook",
    "client_config",
    "consumer_clients",
    "consumer_producer_client",
    "default_region",
    "describe_aws_error",
    "error_code",
    "error_message",
    "is_fatal_put_error",
    "is_protocol_error",
    "is_throttling",
    "is_transport_error",
    "list_all_shards",
    "new_client",
    "open_subscription",
    "producer_client",
    "remove_client_hook",
    "session_for",
]

log = get_logger(__name__)

#: Called with every client this module creates (service name, client): fault injection in the
#: reliability test, instrumentation in applications. botocore event hooks are per client, so
#: this is the one place that sees them all.
ClientHook = Callable[[str, Any], None]
_client_hooks: list[ClientHook] = []


def add_client_hook(hook: ClientHook) -> None:
    """Run ``hook(service_name, client)`` on every client created from now on."""
    _client_hooks.append(hook)


def remove_client_hook(hook: ClientHook) -> None:
    _client_hooks.remove(hook)


def _hooked(service: str, client: Any) -> Any:
    for hook in list(_client_hooks):
        hook(service, client)
    return client


def default_region(region: str | None) -> str | None:
    """``region``, else ``AWS_DEFAULT_REGION``, else ``AWS_REGION`` (which boto3 ignores)."""
    if region:
        return region
    if os.environ.get("AWS_DEFAULT_REGION"):
        return None  # boto3 reads it itself
    return os.environ.get("AWS_REGION") or None


def session_for(
    providers: tuple[str, ...],
    region: str | None,
    *,
    assume_role: AssumeRoleConf | None = None,
) -> boto3.Session:
    """A boto3 session for a KCL-style ``AWSCredentialsProvider`` list.

    Providers are tried in order; the first that yields credentials wins (see reference.conf
    for the syntax). A provider that cannot be honoured is a ``ConfigError``, and so is a chain
    in which no provider yields credentials: never a silent fallback to another identity. With
    ``assume_role.role_arn`` set, that role is assumed on top of the chain's credentials.
    """
    region = default_region(region)
    duration = assume_role.duration_seconds if assume_role is not None else 3600
    session: boto3.Session | None = None
    for text in providers or ("DefaultAWSCredentialsProviderChain",):
        try:
            provider = parse_provider(text)
        except ValueError as exc:
            raise ConfigError("AWSCredentialsProvider", str(exc)) from None
        session = _provider_session(provider, region, duration)
        if session is not None:
            break
    if session is None:
        raise ConfigError(
            "AWSCredentialsProvider", f"no provider of {list(providers)} yielded credentials"
        )
    role = assume_role.provider() if assume_role is not None else None
    if role is not None:
        session = _assumed_role_session(session, role, region, duration)
    return session


def _provider_session(
    provider: CredentialsProvider, region: str | None, duration: int
) -> boto3.Session | None:
    """The session of one provider, or None when it has no credentials to give."""
    if provider.kind == "default":
        return boto3.Session(region_name=region)
    if provider.kind == "profile":
        session = boto3.Session(profile_name=provider.profile, region_name=region)
        return session if session.get_credentials() is not None else None
    if provider.kind == "environment":
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not (key and secret):
            return None
        return boto3.Session(
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
            region_name=region,
        )
    if provider.kind == "static":
        return boto3.Session(
            aws_access_key_id=provider.access_key,
            aws_secret_access_key=provider.secret_key,
            region_name=region,
        )
    base = boto3.Session(region_name=region)  # assume_role: on top of the default chain
    return _assumed_role_session(base, provider, region, duration)


class _AssumedRoleProvider(botocore.credentials.CredentialProvider):
    """Credentials of an assumed role, fetched on first use and refreshed before expiry."""

    METHOD = "kinesis-actors-assume-role"
    CANONICAL_NAME = "KinesisActorsAssumeRole"

    def __init__(self, fetch: Callable[[], dict[str, str]]) -> None:
        super().__init__()
        self._fetch = fetch

    def load(self) -> botocore.credentials.DeferredRefreshableCredentials:
        return botocore.credentials.DeferredRefreshableCredentials(
            refresh_using=self._fetch, method=self.METHOD
        )


def _assumed_role_session(
    base: boto3.Session, role: CredentialsProvider, region: str | None, duration: int
) -> boto3.Session:
    """A session whose credentials are ``role`` assumed with ``base``'s, refreshed by botocore."""
    sts = base.client("sts", region_name=region)
    request: dict[str, Any] = {
        "RoleArn": role.role_arn,
        "RoleSessionName": role.session_name,
        "DurationSeconds": duration,
    }
    if role.external_id:
        request["ExternalId"] = role.external_id

    def fetch() -> dict[str, str]:
        credentials = sts.assume_role(**request)["Credentials"]
        log.debug("assumed role", role=role.role_arn, expires=str(credentials["Expiration"]))
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": credentials["Expiration"].isoformat(),
        }

    core = botocore.session.Session()
    core.register_component(
        "credential_provider",
        botocore.credentials.CredentialResolver([_AssumedRoleProvider(fetch)]),
    )
    return boto3.Session(botocore_session=core, region_name=region)


def client_config(
    *,
    tries: int,
    connect_timeout: float = 6.0,
    read_timeout: float = 60.0,
    max_pool_connections: int = 10,
) -> botocore.config.Config:
    """A botocore config with ``tries`` total attempts (1 = botocore never retries)."""
    return botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": tries},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,
    )


def producer_client(kpl: KplConf) -> KinesisClient:
    """The Kinesis client of the producer engine: one try per call, the engine retries."""
    session = session_for(kpl.credentials_provider, kpl.region, assume_role=kpl.assume_role)
    config = client_config(
        tries=1,
        connect_timeout=kpl.connect_timeout,
        read_timeout=kpl.request_timeout,
        max_pool_connections=kpl.max_connections,
    )
    client: KinesisClient = new_client(
        "kinesis",
        session=session,
        endpoint_url=kpl.endpoint_url,
        config=config,
        verify=kpl.verify_certificate,
        hooked=True,
    )
    return client


def consumer_producer_client(kcl: KclConf) -> KinesisClient:
    """The Kinesis client of a producer engine run by a consumer (its dead-letter stream): the
    consumer's region, endpoint and credentials, one try per call (the engine retries)."""
    session = session_for(kcl.credentials_provider, kcl.region_name, assume_role=kcl.assume_role)
    client: KinesisClient = new_client(
        "kinesis",
        session=session,
        endpoint_url=kcl.kinesis_endpoint,
        config=client_config(tries=1),
        hooked=True,
    )
    return client


def _utc_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, without dateutil for the forms Kinesis and DynamoDB send.

    botocore's default turns every timestamp into a ``dateutil`` local-time datetime, which is
    most of the CPU of a GetRecords call (one ``ApproximateArrivalTimestamp`` per record). The
    JSON protocol sends epoch seconds as numbers: those (and numeric strings, and ISO 8601 with
    an offset) become the same instant as a UTC-aware datetime here. Anything else, or a value
    out of range, is left to the default, so nothing parses differently.
    """
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            try:
                return datetime.fromtimestamp(float(value), UTC)
            except ValueError:
                pass
            if len(value) > 19 and value[10:11] == "T":
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is not None:
                    return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    result: datetime = DEFAULT_TIMESTAMP_PARSER(value)
    return result


def _with_fast_timestamps(session: boto3.Session) -> boto3.Session:
    """Clients created from ``session`` parse timestamps with ``_utc_timestamp``.

    A parser factory of their own, so the change reaches no other session's clients.
    """
    factory = ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=_utc_timestamp)
    session._session.register_component("response_parser_factory", factory)
    return session


#: Connection pool ceiling of a FANOUT consumer's Kinesis client: one connection per subscribed
#: shard (AWS: 10,000 shards per stream at most), so a pool never drops a live subscription's.
_FANOUT_CONNECTIONS = 10_000


def consumer_clients(kcl: KclConf, *, tries: int = 3) -> tuple[KinesisClient, DynamoDBClient]:
    """Kinesis and DynamoDB clients of a consumer (``kcl`` region, endpoints, credentials).

    ``tries`` bounds botocore's own retries of transient errors; the lease code re-reads after a
    failed conditional write, so a retried renewal is still recognised. Timestamps are parsed
    to UTC datetimes without dateutil (``_utc_timestamp``): the same instants, several times
    faster on the GetRecords path.
    """
    session = _with_fast_timestamps(
        session_for(kcl.credentials_provider, kcl.region_name, assume_role=kcl.assume_role)
    )
    if kcl.dynamodb_credentials_provider is not None:
        dynamodb_session = _with_fast_timestamps(
            session_for(kcl.dynamodb_credentials_provider, kcl.region_name)
        )
    else:
        dynamodb_session = session
    config = client_config(tries=tries, max_pool_connections=32)
    kinesis_config = config
    if kcl.retrieval_mode == "FANOUT":
        # Each subscribed shard holds a connection for minutes (pools grow lazily to this).
        kinesis_config = client_config(tries=tries, max_pool_connections=_FANOUT_CONNECTIONS)
    kinesis: KinesisClient = new_client(
        "kinesis",
        session=session,
        endpoint_url=kcl.kinesis_endpoint,
        config=kinesis_config,
        hooked=True,
    )
    dynamodb: DynamoDBClient = new_client(
        "dynamodb",
        session=dynamodb_session,
        endpoint_url=kcl.dynamodb_endpoint,
        config=config,
        hooked=True,
    )
    return kinesis, dynamodb


def new_client(
    service: str,
    *,
    session: boto3.Session | None = None,
    region: str | None = None,
    endpoint_url: str | None = None,
    config: botocore.config.Config | None = None,
    verify: bool | None = None,
    hooked: bool = False,
) -> Any:
    """A boto3 client: the one place the package creates them.

    ``session`` defaults to boto3's standard chain in ``region``. ``hooked`` clients (the
    producer's and the consumer's) are passed to every :func:`add_client_hook` hook; tools'
    clients (the command line, the local servers, a test's setup) are not.

    Raises:
        ConfigError: the endpoint is not a URL, or the region is malformed.
    """
    session = session or boto3.Session(region_name=default_region(region))
    kwargs: dict[str, Any] = {}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if config is not None:
        kwargs["config"] = config
    if verify is not None:
        kwargs["verify"] = verify
    try:
        client = session.client(service, **kwargs)  # type: ignore[call-overload]
    except botocore.exceptions.InvalidRegionError as exc:
        raise ConfigError("region", str(exc)) from None
    except ValueError:  # botocore: "Invalid endpoint: <url>"
        raise ConfigError(
            f"{service} endpoint", f"{endpoint_url!r} is not a URL such as http://host:port"
        ) from None
    return _hooked(service, client) if hooked else client


# -- errors ---------------------------------------------------------------------------------------

#: Error codes that mean "slow down" (Kinesis and DynamoDB) rather than "broken".
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)


def error_code(error: BaseException) -> str | None:
    """The service's error code of a failed call, or None when the call got no answer."""
    if isinstance(error, botocore.exceptions.ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return None


def error_message(error: BaseException) -> str:
    """The service's error message of a failed call, else the exception's text."""
    if isinstance(error, botocore.exceptions.ClientError):
        message = error.response.get("Error", {}).get("Message")
        if message:
            return str(message)
    return str(error)


def is_throttling(error: BaseException) -> bool:
    """AWS refused the call for a rate or capacity limit: back off, then try again."""
    return error_code(error) in THROTTLING_CODES


#: Error codes of PutRecords (the call, or one entry) that no retry can fix: the stream is
#: missing, the caller may not write to it, the request is malformed, or its KMS key cannot be
#: used. Records failing with one of these fail at once instead of retrying until RecordTtl.
#: (KMSThrottlingException is throttling, and retried.)
FATAL_PUT_ERROR_CODES = frozenset(
    {
        "AccessDeniedException",
        "InvalidArgumentException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSOptInRequired",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "ValidationException",
    }
)


def is_fatal_put_error(code: str | None) -> bool:
    """True when a PutRecords error code means every retry would fail the same way."""
    return code in FATAL_PUT_ERROR_CODES


_MAX_MESSAGE_WORDS = 12
_TAG = re.compile(r"<[^>]*>")


def _few_words(text: str) -> str:
    """A message cut to a few words: a server that is not AWS may answer with a whole page."""
    words = _TAG.sub(" ", text).split()
    cut = " ".join(words[:_MAX_MESSAGE_WORDS])
    return cut + (" ..." if len(words) > _MAX_MESSAGE_WORDS else "")


def describe_aws_error(error: BaseException) -> str:
    """One line for a failed AWS call: ``<code>: <message>``, or botocore's own sentence.

    An answer that is not AWS's (an HTTP status for a code, an HTML page for a message) says so.
    """
    code = error_code(error)
    if code is None:
        return _few_words(str(error))
    message = error_message(error)
    if code.isdigit() or message.lstrip().startswith("<"):
        return f"HTTP {code} that is not an AWS answer: {_few_words(message)}"
    return f"{code}: {_few_words(message)}" if message else code


# -- pagination -----------------------------------------------------------------------------------


def list_all_shards(
    client: KinesisClient,
    stream: str | StreamRef,
    *,
    shard_filter: ShardFilterTypeDef | None = None,
    page_size: int | None = None,
) -> list[ShardTypeDef]:
    """Every shard ListShards returns for the stream (a name, an ARN or a ``StreamRef``),
    following NextToken.

    A NextToken call must not repeat the stream (nor the filter). Emulators may ignore
    ``shard_filter``: callers that ask for open shards still check ``EndingSequenceNumber``.
    ``page_size`` is ListShards' MaxResults (the service's default when None).
    """
    page: dict[str, Any] = {} if page_size is None else {"MaxResults": page_size}
    first: dict[str, Any] = {**StreamRef.of(stream).request_args(), **page}
    if shard_filter is not None:
        first["ShardFilter"] = shard_filter
    response = client.list_shards(**first)
    shards = list(response.get("Shards", []))
    while token := response.get("NextToken"):
        response = client.list_shards(NextToken=token, **page)
        shards.extend(response.get("Shards", []))
    return shards


#: SubscribeToShard refused in a way that says the endpoint does not speak it as we do: not
#: served (kinesalite: UnknownOperationException, ministack: InvalidAction), or a request it
#: could not read. KCL maintainers traced ``InvalidArgumentException`` ("Invalid
#: StartingSequenceNumber") to SubscribeToShard over HTTP/1.1, which is what botocore speaks.
_PROTOCOL_ERROR_CODES = frozenset(
    {
        "UnknownOperationException",
        "UnknownOperation",
        "InvalidAction",
        "SerializationException",
        "InvalidArgumentException",
    }
)


def is_protocol_error(error: BaseException) -> bool:
    """The event stream could not be read (bad framing, no initial response), or the endpoint
    refused SubscribeToShard as not served or unreadable: retrying the same way will not help."""
    return isinstance(error, ParserError) or error_code(error) in _PROTOCOL_ERROR_CODES


def is_transport_error(error: BaseException) -> bool:
    """The connection failed or broke (timeout, reset, closed mid-stream): worth retrying."""
    return isinstance(
        error, urllib3.exceptions.HTTPError | HTTPClientError | BotocoreConnectionError | OSError
    )


class Subscription:
    """One SubscribeToShard response: its events, and a way to end a blocked read at once.

    botocore's ``EventStream.close()`` does not wake a thread blocked reading it (measured: the
    read returns only when the next event arrives, up to 5 s later). :meth:`interrupt` shuts the
    socket down for reading (urllib3's ``HTTPResponse.shutdown``), so the blocked read ends now.
    """

    def __init__(self, events: Any, raw: Any) -> None:
        self._events = events
        self._raw = raw

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._events)

    def interrupt(self) -> None:
        """End a read blocked on another thread (safe to call at any time, more than once)."""
        shutdown = getattr(self._raw, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except (OSError, ValueError, RuntimeError):
                pass  # already closed or released

    def close(self) -> None:
        self._events.close()


_subscribe_response = threading.local()
_HOOK_ID = "kinesis-actors-subscription-raw-response"


def _keep_raw_response(http_response: Any, **_: Any) -> None:
    _subscribe_response.raw = getattr(http_response, "raw", None)


def open_subscription(kinesis: KinesisClient, **request: Any) -> Subscription:
    """Call SubscribeToShard and return its :class:`Subscription` (errors raise ClientError).

    The raw HTTP response is caught by an ``after-call`` hook of the client on the calling
    thread, so concurrent subscriptions on one client each get their own.
    """
    events = kinesis.meta.events
    events.register("after-call.kinesis.SubscribeToShard", _keep_raw_response, unique_id=_HOOK_ID)
    _subscribe_response.raw = None
    response = kinesis.subscribe_to_shard(**request)
    return Subscription(response["EventStream"], _subscribe_response.raw)
