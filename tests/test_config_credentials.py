"""Assume-role credentials (provider string and block form) against moto's STS, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kinesis_actors._aws import consumer_clients, producer_client, session_for
from kinesis_actors._config import ConsumerConf, KplConf, load_config

ROLE = "arn:aws:iam::123456789012:role/cross-account-reader"
OTHER_ROLE = "arn:aws:iam::123456789012:role/lease-writer"


@pytest.fixture(autouse=True)
def _aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_KINESIS",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_STS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with mock_aws():
        yield


def caller(client: Any, call: str) -> str:
    """The identity that signed one ``call`` of ``client``, as moto's STS resolves its key id."""
    seen: list[str] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(request.headers["Authorization"].decode().split("Credential=")[1].split("/")[0])

    client.meta.events.register("before-send", capture)
    getattr(client, call)()
    sts = boto3.client("sts", aws_access_key_id=seen[0], aws_secret_access_key="unused")
    arn: str = sts.get_caller_identity()["Arn"]
    return arn


def assumed(session: boto3.Session) -> str:
    arn: str = session.client("sts").get_caller_identity()["Arn"]
    return arn


def test_provider_string_assumes_the_role_with_its_session_name() -> None:
    session = session_for(
        (f"STSAssumeRoleSessionCredentialsProvider|{ROLE}|orders-reader|ext-42",), None
    )
    assert assumed(session) == (
        "arn:aws:sts::123456789012:assumed-role/cross-account-reader/orders-reader"
    )


def test_block_form_assumes_the_role_for_the_producer_client() -> None:
    kpl = KplConf.from_config({"roleArn": ROLE, "roleSessionName": "producer-1"})
    assert caller(producer_client(kpl), "list_streams").endswith(
        "assumed-role/cross-account-reader/producer-1"
    )


def test_credentials_refresh_before_they_expire() -> None:
    """botocore refreshes 15 minutes before expiry: a 900-second role refreshes on each use."""
    conf = load_config(
        f'kinesis.x {{ stream-name = s, kpl {{ roleArn = "{ROLE}", durationSeconds = 900 }} }}'
    )
    kpl = KplConf.from_config(conf["kinesis"]["x"]["kpl"])
    session = session_for(kpl.credentials_provider, kpl.region, assume_role=kpl.assume_role)
    credentials = session.get_credentials()
    assert credentials is not None
    keys = {credentials.get_frozen_credentials().access_key for _ in range(3)}
    assert len(keys) == 3  # a fresh AssumeRole each time, none of them expired yet
    long_lived = session_for(
        kpl.credentials_provider,
        None,
        assume_role=KplConf.from_config({"roleArn": ROLE, "durationSeconds": 3600}).assume_role,
    ).get_credentials()
    assert long_lived is not None
    assert len({long_lived.get_frozen_credentials().access_key for _ in range(3)}) == 1


def test_dynamodb_credentials_are_configured_separately() -> None:
    conf = ConsumerConf.from_config(
        load_config(
            f"""
            kinesis.c {{
              stream-name = s
              kcl {{
                roleArn = "{ROLE}"
                roleSessionName = consumer
                AWSCredentialsProviderDynamoDB = "STSAssumeRoleSessionCredentialsProvider|{OTHER_ROLE}|leases"
              }}
            }}
            """
        ),
        "c",
    )
    kinesis, dynamodb = consumer_clients(conf.kcl)
    assert caller(kinesis, "list_streams").endswith("assumed-role/cross-account-reader/consumer")
    assert caller(dynamodb, "list_tables").endswith("assumed-role/lease-writer/leases")
