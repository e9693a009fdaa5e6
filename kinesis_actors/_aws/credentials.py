"""Credentials: a boto3 session for a KCL-style provider chain, with an optional assumed role."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
import botocore.credentials
import botocore.session

from kinesis_actors._config._credentials import (
    AssumeRoleConf,
    CredentialsProvider,
    parse_provider,
)
from kinesis_actors._errors import ConfigError
from kinesis_actors._logging import get_logger

__all__ = ["default_region", "session_for"]

log = get_logger(__name__)


def default_region(region: str | None) -> str | None:
    """``region``, else ``AWS_DEFAULT_REGION``, else ``AWS_REGION`` (which boto3 ignores)."""
    if region:
        return region
    if os.environ.get("AWS_DEFAULT_REGION"):
        return None  # boto3 reads it itself
    return os.environ.get("AWS_REGION") or None


#: Makes the botocore session under each boto3 session ``session_for`` builds.
CoreFactory = Callable[[], botocore.session.Session]


def session_for(
    providers: tuple[str, ...],
    region: str | None,
    *,
    assume_role: AssumeRoleConf | None = None,
    core: CoreFactory = botocore.session.Session,
) -> boto3.Session:
    """A boto3 session for a KCL-style ``AWSCredentialsProvider`` list.

    Providers are tried in order; the first that yields credentials wins (see reference.conf
    for the syntax). A provider that cannot be honoured is a ``ConfigError``, and so is a chain
    in which no provider yields credentials: never a silent fallback to another identity. With
    ``assume_role.role_arn`` set, that role is assumed on top of the chain's credentials.
    ``core`` builds the botocore session under it (``fast_timestamps_core`` for the consumer).
    """
    region = default_region(region)
    duration = assume_role.duration_seconds if assume_role is not None else 3600
    session: boto3.Session | None = None
    for text in providers or ("DefaultAWSCredentialsProviderChain",):
        try:
            provider = parse_provider(text)
        except ValueError as exc:
            raise ConfigError("AWSCredentialsProvider", str(exc)) from None
        session = _provider_session(provider, region, duration, core)
        if session is not None:
            break
    if session is None:
        raise ConfigError(
            "AWSCredentialsProvider", f"no provider of {list(providers)} yielded credentials"
        )
    role = assume_role.provider() if assume_role is not None else None
    if role is not None:
        session = _assumed_role_session(session, role, region, duration, core)
    return session


def _provider_session(
    provider: CredentialsProvider, region: str | None, duration: int, core: CoreFactory
) -> boto3.Session | None:
    """The session of one provider, or None when it has no credentials to give."""
    if provider.kind == "default":
        return boto3.Session(region_name=region, botocore_session=core())
    if provider.kind == "profile":
        session = boto3.Session(
            profile_name=provider.profile, region_name=region, botocore_session=core()
        )
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
            botocore_session=core(),
        )
    if provider.kind == "static":
        return boto3.Session(
            aws_access_key_id=provider.access_key,
            aws_secret_access_key=provider.secret_key,
            region_name=region,
            botocore_session=core(),
        )
    base = boto3.Session(region_name=region)  # assume_role: on top of the default chain
    return _assumed_role_session(base, provider, region, duration, core)


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
    base: boto3.Session,
    role: CredentialsProvider,
    region: str | None,
    duration: int,
    core: CoreFactory,
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

    assumed = core()
    assumed.register_component(
        "credential_provider",
        botocore.credentials.CredentialResolver([_AssumedRoleProvider(fetch)]),
    )
    return boto3.Session(botocore_session=assumed, region_name=region)
