"""boto3 clients built from the settings: region, endpoint, credentials and retry policy.

The engines retry by their own rules (the KPL's time-based retries, the KCL's lease semantics),
so clients are created with botocore retries set explicitly. Note that botocore's
``max_attempts`` counts retries, not tries; this module speaks in total tries.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
import botocore.config
import botocore.exceptions
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER, ResponseParserFactory

from kinesis_actors._errors import ConfigError
from kinesis_actors._logging import get_logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import KclConf, KplConf

__all__ = [
    "ClientHook",
    "add_client_hook",
    "client_config",
    "consumer_clients",
    "describe_aws_error",
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


_DEFAULT_CHAIN = "DefaultAWSCredentialsProviderChain"


def session_for(providers: tuple[str, ...], region: str | None) -> boto3.Session:
    """A boto3 session for a KCL-style ``AWSCredentialsProvider`` list.

    Understood: ``DefaultAWSCredentialsProviderChain`` (boto3's standard chain),
    ``ProfileCredentialsProvider|<profile>``, ``EnvironmentVariableCredentialsProvider`` and
    ``StaticCredentialsProvider|<key id>|<secret>``. Providers are tried in order; the first that
    yields credentials wins. Java class names from Scala configs are skipped with a warning.
    """
    for provider in providers or (_DEFAULT_CHAIN,):
        name, *args = [part.strip() for part in provider.split("|")]
        short = name.rsplit(".", 1)[-1]
        if short in {_DEFAULT_CHAIN, "DefaultCredentialsProvider"}:
            return boto3.Session(region_name=region)
        if short == "ProfileCredentialsProvider":
            profile = args[0] if args else "default"
            session = boto3.Session(profile_name=profile, region_name=region)
            if session.get_credentials() is not None:
                return session
        elif short in {"EnvironmentVariableCredentialsProvider", "EnvironmentCredentialsProvider"}:
            key, secret = (
                os.environ.get("AWS_ACCESS_KEY_ID"),
                os.environ.get("AWS_SECRET_ACCESS_KEY"),
            )
            if key and secret:
                return boto3.Session(
                    aws_access_key_id=key,
                    aws_secret_access_key=secret,
                    aws_session_token=os.environ.get("AWS_SESSION_TOKEN"),
                    region_name=region,
                )
        elif short == "StaticCredentialsProvider":
            if len(args) < 2:
                raise ConfigError(
                    "AWSCredentialsProvider",
                    f"{provider!r}: StaticCredentialsProvider needs |<key id>|<secret>",
                )
            return boto3.Session(
                aws_access_key_id=args[0], aws_secret_access_key=args[1], region_name=region
            )
        else:
            log.warning("credentials provider not understood, skipped", provider=provider)
    log.warning("no credentials provider matched; using boto3's standard chain")
    return boto3.Session(region_name=region)


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
    session = session_for(kpl.credentials_provider, kpl.region)
    config = client_config(
        tries=1,
        connect_timeout=kpl.connect_timeout,
        read_timeout=kpl.request_timeout,
        max_pool_connections=kpl.max_connections,
    )
    kwargs: dict[str, Any] = {"config": config, "verify": kpl.verify_certificate}
    if kpl.endpoint_url:
        kwargs["endpoint_url"] = kpl.endpoint_url
    client: KinesisClient = _hooked("kinesis", session.client("kinesis", **kwargs))
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


def consumer_clients(kcl: KclConf, *, tries: int = 3) -> tuple[KinesisClient, DynamoDBClient]:
    """Kinesis and DynamoDB clients of a consumer (``kcl`` region, endpoints, credentials).

    ``tries`` bounds botocore's own retries of transient errors; the lease code re-reads after a
    failed conditional write, so a retried renewal is still recognised. Timestamps are parsed
    to UTC datetimes without dateutil (``_utc_timestamp``): the same instants, several times
    faster on the GetRecords path.
    """
    session = _with_fast_timestamps(session_for(kcl.credentials_provider, kcl.region_name))
    config = client_config(tries=tries, max_pool_connections=32)
    kinesis_kwargs: dict[str, Any] = {"config": config}
    if kcl.kinesis_endpoint:
        kinesis_kwargs["endpoint_url"] = kcl.kinesis_endpoint
    dynamodb_kwargs: dict[str, Any] = {"config": config}
    if kcl.dynamodb_endpoint:
        dynamodb_kwargs["endpoint_url"] = kcl.dynamodb_endpoint
    kinesis: KinesisClient = _hooked("kinesis", session.client("kinesis", **kinesis_kwargs))
    dynamodb: DynamoDBClient = _hooked("dynamodb", session.client("dynamodb", **dynamodb_kwargs))
    return kinesis, dynamodb


_MAX_MESSAGE_WORDS = 12


def _few_words(text: str) -> str:
    """A service message cut to a few words: a non-AWS server may answer with a whole page."""
    words = text.split()
    cut = " ".join(words[:_MAX_MESSAGE_WORDS])
    return cut + (" ..." if len(words) > _MAX_MESSAGE_WORDS else "")


def describe_aws_error(error: BaseException) -> str:
    """One line for a failed AWS call: ``<code>: <message>``, or botocore's own sentence."""
    if isinstance(error, botocore.exceptions.ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code") or "error"
        message = _few_words(str(details.get("Message") or ""))
        return f"{code}: {message}" if message else str(code)
    return _few_words(str(error))
