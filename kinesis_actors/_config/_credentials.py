"""Credentials settings: the KCL's ``AWSCredentialsProvider`` strings and the assume-role keys.

A provider string is parsed when the config loads, so a provider kinesis-actors cannot honour is
a ``ConfigError`` naming its key, never a silent fallback to another identity.
"""

from __future__ import annotations

from dataclasses import dataclass

from kinesis_actors._config._convert import integer, string, string_list
from kinesis_actors._config._schema import setting, settings

__all__ = ["AssumeRoleConf", "CredentialsProvider", "credentials_providers", "parse_provider"]

_DEFAULT_CHAIN = frozenset({"DefaultAWSCredentialsProviderChain", "DefaultCredentialsProvider"})
_ENVIRONMENT = frozenset(
    {"EnvironmentVariableCredentialsProvider", "EnvironmentCredentialsProvider"}
)
_PROFILE = "ProfileCredentialsProvider"
_STATIC = "StaticCredentialsProvider"
_ASSUME_ROLE = frozenset(
    {"STSAssumeRoleSessionCredentialsProvider", "StsAssumeRoleCredentialsProvider"}
)
_KNOWN = (
    "DefaultAWSCredentialsProviderChain, ProfileCredentialsProvider|<profile>, "
    "EnvironmentVariableCredentialsProvider, StaticCredentialsProvider|<key id>|<secret>, "
    "STSAssumeRoleSessionCredentialsProvider|<role arn>|<session name>[|<external id>]"
)


@dataclass(frozen=True)
class CredentialsProvider:
    """One parsed provider: ``kind`` is default, profile, environment, static or assume_role."""

    kind: str
    profile: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    role_arn: str | None = None
    session_name: str | None = None
    external_id: str | None = None


def _role_arn(value: str, text: str) -> str:
    if not value.startswith("arn:") or ":role/" not in value:
        raise ValueError(
            f"{text!r}: {value!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
        )
    return value


def parse_provider(text: str) -> CredentialsProvider:
    """Parse one ``Name|arg|...`` provider; ``ValueError`` says what is wrong or unknown."""
    name, *args = [part.strip() for part in text.split("|")]
    short = name.rsplit(".", 1)[-1]
    if short in _DEFAULT_CHAIN and not args:
        return CredentialsProvider("default")
    if short in _ENVIRONMENT and not args:
        return CredentialsProvider("environment")
    if short == _PROFILE and len(args) <= 1:
        return CredentialsProvider("profile", profile=args[0] if args else "default")
    if short == _STATIC:
        if len(args) != 2 or not all(args):
            raise ValueError(f"{text!r}: StaticCredentialsProvider needs |<key id>|<secret>")
        return CredentialsProvider("static", access_key=args[0], secret_key=args[1])
    if short in _ASSUME_ROLE:
        if len(args) not in {2, 3} or not all(args):
            raise ValueError(
                f"{text!r}: STSAssumeRoleSessionCredentialsProvider needs "
                "|<role arn>|<session name>[|<external id>]"
            )
        return CredentialsProvider(
            "assume_role",
            role_arn=_role_arn(args[0], text),
            session_name=args[1],
            external_id=args[2] if len(args) == 3 else None,
        )
    raise ValueError(f"{text!r} is not a credentials provider kinesis-actors can honour ({_KNOWN})")


def credentials_providers(value: object) -> tuple[str, ...]:
    """A comma-separated list (or HOCON list) of provider strings, each checked now."""
    providers = string_list(value)
    for provider in providers:
        parse_provider(provider)
    return providers


def _optional_role_arn(value: object) -> str:
    text = string(value)
    return _role_arn(text, text)


@settings
class AssumeRoleConf:
    """The block form of assume-role (``roleArn`` ...), on top of ``AWSCredentialsProvider``."""

    role_arn: str | None = setting("roleArn", _optional_role_arn, unset=None)
    role_session_name: str = setting("roleSessionName", string)
    external_id: str | None = setting("externalId", string, unset=None)
    duration_seconds: int = setting("durationSeconds", integer(900, 43200))

    def provider(self) -> CredentialsProvider | None:
        """The role to assume on top of the chain, or None when ``roleArn`` is unset."""
        if self.role_arn is None:
            return None
        return CredentialsProvider(
            "assume_role",
            role_arn=self.role_arn,
            session_name=self.role_session_name,
            external_id=self.external_id,
        )
