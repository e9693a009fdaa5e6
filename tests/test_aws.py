from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ParamValidationError
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER
from moto import mock_aws

from kinesis_actors._aws import (
    add_client_hook,
    consumer_clients,
    producer_client,
    remove_client_hook,
    session_for,
)
from kinesis_actors._aws.timestamps import utc_timestamp
from kinesis_actors._config import ConsumerConf, KplConf, load_config
from kinesis_actors._errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    credentials = tmp_path / "credentials"
    credentials.write_text("[ww]\naws_access_key_id = AKIDWW\naws_secret_access_key = secretww\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))


def test_named_profile_like_the_seed() -> None:
    session = session_for(("ProfileCredentialsProvider|ww",), "us-east-1")
    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.access_key == "AKIDWW"


def test_environment_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secretenv")
    session = session_for(("EnvironmentVariableCredentialsProvider",), "eu-west-1")
    assert session.get_credentials().access_key == "AKIDENV"  # type: ignore[union-attr]
    assert session.region_name == "eu-west-1"


def test_chain_skips_providers_without_credentials_and_refuses_unknown_ones() -> None:
    session = session_for(
        ("EnvironmentVariableCredentialsProvider", "ProfileCredentialsProvider|ww"), None
    )
    assert session.get_credentials().access_key == "AKIDWW"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="not a credentials provider"):
        session_for(("com.example.TestCredentials|foo|bar", "ProfileCredentialsProvider|ww"), None)
    with pytest.raises(ConfigError, match="yielded credentials"):
        session_for(("EnvironmentVariableCredentialsProvider",), None)


def test_static_provider_needs_both_parts() -> None:
    session = session_for(("StaticCredentialsProvider|AKIDS|secrets",), None)
    assert session.get_credentials().access_key == "AKIDS"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="StaticCredentialsProvider needs"):
        session_for(("StaticCredentialsProvider|only-key",), None)


def test_producer_client_uses_kpl_endpoint_and_never_retries() -> None:
    kpl = KplConf.from_config(
        {
            "KinesisEndpoint": "127.0.0.1",
            "KinesisPort": 4567,
            "KinesisScheme": "http",
            "Region": "us-west-2",
        }
    )
    client = producer_client(kpl)
    assert client.meta.endpoint_url == "http://127.0.0.1:4567"
    assert client.meta.region_name == "us-west-2"
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert client.meta.config.max_pool_connections == kpl.max_connections


def test_standard_endpoint_variables_keep_working(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:1111")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:2222")
    conf = ConsumerConf.from_config(
        load_config("kinesis.c { stream-name = s, kcl.regionName = us-east-1 }"), "c"
    )
    kinesis, dynamodb = consumer_clients(conf.kcl)
    assert kinesis.meta.endpoint_url == "http://127.0.0.1:1111"
    assert dynamodb.meta.endpoint_url == "http://127.0.0.1:2222"
    assert producer_client(KplConf.from_config({"Region": "us-east-1"})).meta.endpoint_url == (
        "http://127.0.0.1:1111"
    )


def _signed_consumer_clients(
    monkeypatch: pytest.MonkeyPatch, kcl: str
) -> tuple[ConsumerConf, Any, Any]:
    """A consumer's settings (``kcl`` block) and its clients, with static credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKID")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    conf = ConsumerConf.from_config(
        load_config(f"kinesis.c {{ stream-name = s, kcl {{ {kcl} }} }}"), "c"
    )
    kinesis, dynamodb = consumer_clients(conf.kcl)
    return conf, kinesis, dynamodb


def _user_agents(*clients: Any) -> list[str]:
    """The User-Agent of every request the ``clients`` send from now on (each answered ``{}``)."""
    agents: list[str] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        agents.append(request.headers["User-Agent"].decode())
        return AWSResponse(request.url, 200, {}, _Raw(b"{}"))

    for client in clients:
        client.meta.events.register_first("before-send", answer)
    return agents


def test_consumer_clients_send_a_fixed_user_agent_and_dynamodb_calls_skip_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, kinesis, dynamodb = _signed_consumer_clients(monkeypatch, "regionName = us-east-1")
    agents = _user_agents(kinesis, dynamodb)
    dynamodb.get_item(TableName="x", Key={})  # botocore's validation wants >= 3 characters
    with pytest.raises(ParamValidationError):
        kinesis.get_records(ShardIterator="")  # the Kinesis client still validates
    kinesis.get_records(ShardIterator="it")
    assert len(agents) == 2 and len(set(agents)) == 1
    assert agents[0].startswith("kinesis-actors/")


def test_client_hooks_see_every_client() -> None:
    seen: list[str] = []

    def hook(service: str, client: Any) -> None:
        seen.append(service)

    add_client_hook(hook)
    try:
        conf = ConsumerConf.from_config(
            load_config("kinesis.c { stream-name = s, kcl.regionName = us-east-1 }"), "c"
        )
        consumer_clients(conf.kcl)
        producer_client(KplConf.from_config({"Region": "us-east-1"}))
    finally:
        remove_client_hook(hook)
    assert seen == ["kinesis", "dynamodb", "kinesis"]


# --- the consumer clients' timestamp parser ----------------------------------------------------

TIMESTAMP_SAMPLES: list[Any] = [
    1795675989.066,  # what Kinesis sends for ApproximateArrivalTimestamp (JSON number)
    1795675989,
    0,
    0.000001,
    1.5e9,
    4102444800.999999,
    "1795675989.066",
    "1795675989",
    "2026-11-26T06:53:10Z",
    "2026-11-26T06:53:10.066Z",
    "2026-11-26T06:53:10.123456+00:00",
    "2026-11-26T07:53:10+01:00",
    "2026-11-26T01:53:10.5-05:00",
]
#: Left to botocore's default parser (no UTC fast path): the same result by construction.
FALLBACK_SAMPLES: list[Any] = [
    "Thu, 26 Nov 2026 06:53:10 GMT",
    "2026-11-26T06:53:10",
    "2026-11-26 06:53:10Z",
    "2026-11-26",
]


@pytest.mark.parametrize("value", TIMESTAMP_SAMPLES)
def test_utc_timestamp_is_the_default_parsers_instant_in_utc(value: Any) -> None:
    parsed = utc_timestamp(value)
    expected = DEFAULT_TIMESTAMP_PARSER(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC
    assert parsed.utcoffset() == timedelta(0)
    assert parsed.timestamp() == expected.timestamp()
    assert parsed.microsecond == expected.astimezone(UTC).microsecond


@pytest.mark.parametrize("value", FALLBACK_SAMPLES)
def test_other_timestamp_forms_are_left_to_the_default(value: Any) -> None:
    parsed = utc_timestamp(value)
    expected = DEFAULT_TIMESTAMP_PARSER(value)
    assert parsed == expected
    assert (parsed.tzinfo is None) == (expected.tzinfo is None)


@pytest.mark.parametrize("value", ["not a timestamp", "", float("nan"), "2026-13-01T00:00:00Z"])
def test_invalid_timestamps_fail_as_with_the_default(value: Any) -> None:
    with pytest.raises(ValueError) as default_error:
        DEFAULT_TIMESTAMP_PARSER(value)
    with pytest.raises(ValueError) as error:
        utc_timestamp(value)
    assert str(error.value) == str(default_error.value)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Any:
        yield self._body


def _answered(client: Any, operation: str, body: dict[str, Any], **params: Any) -> dict[str, Any]:
    """``client``'s ``operation`` answered by ``body`` through botocore's own response parsing."""

    def answer(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, 200, {}, _Raw(json.dumps(body).encode()))

    service = client.meta.service_model.service_name
    client.meta.events.register_first(f"before-send.{service}.{operation}", answer)
    method = client.meta.method_to_api_mapping
    name = next(python for python, api in method.items() if api == operation)
    response: dict[str, Any] = getattr(client, name)(**params)
    return response


def _get_records_via(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    """``client.get_records`` answered by ``body`` through botocore's own response parsing."""
    return _answered(client, "GetRecords", body, ShardIterator="it")


GET_RECORDS_BODY = {
    "Records": [
        {
            "SequenceNumber": "49680575801627832859960180891904532909477935108728029234",
            "ApproximateArrivalTimestamp": 1795675989.066,
            "Data": "eHl6",
            "PartitionKey": "pk",
        }
    ],
    "NextShardIterator": "next",
    "MillisBehindLatest": 0,
}


def test_consumer_clients_parse_timestamps_to_utc_and_other_clients_do_not() -> None:
    conf = ConsumerConf.from_config(
        load_config(
            "kinesis.c { stream-name = s, kcl { regionName = us-east-1, "
            'AWSCredentialsProvider = "StaticCredentialsProvider|AKID|secret" } }'
        ),
        "c",
    )
    kinesis, _ = consumer_clients(conf.kcl)
    record = _get_records_via(kinesis, GET_RECORDS_BODY)["Records"][0]
    assert record["ApproximateArrivalTimestamp"].tzinfo is UTC
    assert record["ApproximateArrivalTimestamp"] == datetime(
        2026, 11, 26, 6, 53, 9, 66000, tzinfo=UTC
    )
    assert record["Data"] == b"xyz"
    # A plain client (a new session, as the benchmark's baseline uses) keeps botocore's default.
    plain = boto3.Session(
        aws_access_key_id="AKID", aws_secret_access_key="secret", region_name="us-east-1"
    ).client("kinesis")
    default = _get_records_via(plain, GET_RECORDS_BODY)["Records"][0]
    assert default["ApproximateArrivalTimestamp"] == record["ApproximateArrivalTimestamp"]
    assert default["ApproximateArrivalTimestamp"].tzinfo is not UTC


def test_kcl_user_agent_goes_before_the_library_s_on_both_consumer_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    conf, kinesis, dynamodb = _signed_consumer_clients(
        monkeypatch, 'regionName = us-east-1, userAgent = "my-app/2"'
    )
    assert conf.kcl.user_agent == "my-app/2"
    agents = _user_agents(kinesis, dynamodb)
    dynamodb.get_item(TableName="x", Key={})
    kinesis.get_records(ShardIterator="it")
    assert len(agents) == 2
    assert all(agent.startswith("my-app/2 kinesis-actors/") for agent in agents)


@pytest.mark.parametrize(
    "provider",
    [
        "DefaultAWSCredentialsProviderChain",
        "EnvironmentVariableCredentialsProvider",
        "ProfileCredentialsProvider|ww",
        "StaticCredentialsProvider|AKID|secret",
        "STSAssumeRoleSessionCredentialsProvider|arn:aws:iam::123456789012:role/reader|consumer",
    ],
)
def test_both_consumer_clients_parse_timestamps_to_utc_whatever_the_credentials(
    provider: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secretenv")
    conf = ConsumerConf.from_config(
        load_config(
            f"kinesis.c {{ stream-name = s, kcl {{ regionName = us-east-1, AWSCredentialsProvider "
            f'= "{provider}", AWSCredentialsProviderDynamoDB = "{provider}" }} }}'
        ),
        "c",
    )
    with mock_aws():  # the assumed role's STS: one call each fetches the clients' credentials
        kinesis, dynamodb = consumer_clients(conf.kcl)
        kinesis.list_streams()
        dynamodb.list_tables()
    record = _get_records_via(kinesis, GET_RECORDS_BODY)["Records"][0]
    table = _answered(
        dynamodb,
        "DescribeTable",
        {"Table": {"TableName": "leases", "CreationDateTime": 1795675989.066}},
        TableName="leases",
    )["Table"]
    expected = datetime(2026, 11, 26, 6, 53, 9, 66000, tzinfo=UTC)
    assert record["ApproximateArrivalTimestamp"] == expected
    assert record["ApproximateArrivalTimestamp"].tzinfo is UTC
    assert table["CreationDateTime"] == expected
    assert table["CreationDateTime"].tzinfo is UTC
