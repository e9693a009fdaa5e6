"""boto3 clients: the one factory, the producer's and the consumer's clients, and client hooks.

Every boto3 client of the package is created by :func:`new_client` (the producer's and the
consumer's from their settings, the command line's and the local servers' from an endpoint).
The engines retry by their own rules (the KPL's time-based retries, the KCL's lease semantics),
so clients are created with botocore retries set explicitly. Note that botocore's
``max_attempts`` counts retries, not tries; this module speaks in total tries.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import botocore
import botocore.config
import botocore.exceptions

from kinesis_actors._aws.credentials import default_region, session_for
from kinesis_actors._aws.direct import direct_dynamodb, remember_direct_path
from kinesis_actors._aws.timestamps import fast_timestamps_core
from kinesis_actors._errors import ConfigError
from kinesis_actors._version import __version__

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import KclConf, KplConf

__all__ = [
    "ClientHook",
    "add_client_hook",
    "client_config",
    "consumer_clients",
    "consumer_producer_client",
    "new_client",
    "producer_client",
    "remove_client_hook",
]

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
    client: KinesisClient = _engine_client(
        "kinesis", session, kpl.endpoint_url, config, verify=kpl.verify_certificate
    )
    return client


def consumer_producer_client(kcl: KclConf) -> KinesisClient:
    """The Kinesis client of a producer engine run by a consumer (its dead-letter stream): the
    consumer's region, endpoint and credentials, one try per call (the engine retries)."""
    session = session_for(kcl.credentials_provider, kcl.region_name, assume_role=kcl.assume_role)
    client: KinesisClient = _engine_client(
        "kinesis", session, kcl.kinesis_endpoint, client_config(tries=1)
    )
    return client


#: The User-Agent of the consumer's clients, built once. botocore otherwise rebuilds its own
#: (some twenty sanitised parts) for every request: a tenth of the CPU of a lease renewal.
_CONSUMER_USER_AGENT = (
    f"kinesis-actors/{__version__} Boto3/{boto3.__version__} Botocore/{botocore.__version__}"
    f" Python/{platform.python_version()}"
)


def _consumer_config(
    config: botocore.config.Config, kcl: KclConf, *, validate: bool
) -> botocore.config.Config:
    """``config`` with the consumer's fixed user agent (``kcl.userAgent`` first, as the KCL puts
    it); without botocore's client-side parameter validation unless ``validate`` (the lease code
    builds every input of its DynamoDB calls itself, and DynamoDB validates them anyway)."""
    user_agent = _CONSUMER_USER_AGENT
    if kcl.user_agent is not None:
        user_agent = f"{kcl.user_agent} {user_agent}"
    return config.merge(
        botocore.config.Config(user_agent=user_agent, parameter_validation=validate)
    )


#: Connection pool ceiling of a FANOUT consumer's Kinesis client: one connection per subscribed
#: shard (AWS: 10,000 shards per stream at most), so a pool never drops a live subscription's.
_FANOUT_CONNECTIONS = 10_000


def consumer_clients(kcl: KclConf, *, tries: int = 3) -> tuple[KinesisClient, DynamoDBClient]:
    """Kinesis and DynamoDB clients of a consumer (``kcl`` region, endpoints, credentials).

    ``tries`` bounds botocore's own retries of transient errors; the lease code re-reads after a
    failed conditional write, so a retried renewal is still recognised. Timestamps are parsed
    to UTC datetimes without dateutil (``utc_timestamp``): the same instants, several times
    faster on the GetRecords path. Both clients send a fixed user agent, and the DynamoDB one
    (leases, membership, checkpoints: about one call per lease per ``failover / 3``) skips
    client-side parameter validation (`_consumer_config`). Unless a client hook is registered
    (it is to see every call), the DynamoDB client gets a direct path for the lease table's
    UpdateItems (`kinesis_actors._aws.direct`).
    """
    session = session_for(
        kcl.credentials_provider,
        kcl.region_name,
        assume_role=kcl.assume_role,
        core=fast_timestamps_core,
    )
    if kcl.dynamodb_credentials_provider is not None:
        dynamodb_session = session_for(
            kcl.dynamodb_credentials_provider, kcl.region_name, core=fast_timestamps_core
        )
    else:
        dynamodb_session = session
    config = client_config(tries=tries, max_pool_connections=32)
    kinesis_config = config
    if kcl.retrieval_mode == "FANOUT":
        # Each subscribed shard holds a connection for minutes (pools grow lazily to this).
        kinesis_config = client_config(tries=tries, max_pool_connections=_FANOUT_CONNECTIONS)
    kinesis: KinesisClient = _engine_client(
        "kinesis",
        session,
        kcl.kinesis_endpoint,
        _consumer_config(kinesis_config, kcl, validate=True),
    )
    observed = bool(_client_hooks)
    dynamodb: DynamoDBClient = _engine_client(
        "dynamodb",
        dynamodb_session,
        kcl.dynamodb_endpoint,
        _consumer_config(config, kcl, validate=False),
    )
    if not observed:
        direct = direct_dynamodb(
            dynamodb, dynamodb_session, verify=None, user_agent=_CONSUMER_USER_AGENT
        )
        remember_direct_path(dynamodb, direct)
    return kinesis, dynamodb


def _engine_client(
    service: str,
    session: boto3.Session,
    endpoint_url: str | None,
    config: botocore.config.Config,
    *,
    verify: bool | None = None,
) -> Any:
    """A client of the producer or the consumer engine: one every client hook sees."""
    return new_client(
        service,
        session=session,
        endpoint_url=endpoint_url,
        config=config,
        verify=verify,
        hooked=True,
    )


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
