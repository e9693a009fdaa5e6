from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from kinesis_actors.aws import (
    add_client_hook,
    consumer_clients,
    producer_client,
    remove_client_hook,
    session_for,
)
from kinesis_actors.config import ConsumerConf, KplConfig, load_config
from kinesis_actors.errors import ConfigError


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


def test_chain_skips_java_classes_and_empty_providers() -> None:
    with capture_logs() as logs:
        session = session_for(
            (
                "com.example.TestCredentials|foo|bar",
                "EnvironmentVariableCredentialsProvider",
                "ProfileCredentialsProvider|ww",
            ),
            None,
        )
    assert session.get_credentials().access_key == "AKIDWW"  # type: ignore[union-attr]
    assert any(entry["event"].startswith("credentials provider not understood") for entry in logs)


def test_static_provider_needs_both_parts() -> None:
    session = session_for(("StaticCredentialsProvider|AKIDS|secrets",), None)
    assert session.get_credentials().access_key == "AKIDS"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="StaticCredentialsProvider needs"):
        session_for(("StaticCredentialsProvider|only-key",), None)


def test_producer_client_uses_kpl_endpoint_and_never_retries() -> None:
    kpl = KplConfig.from_config(
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
    assert producer_client(KplConfig.from_config({"Region": "us-east-1"})).meta.endpoint_url == (
        "http://127.0.0.1:1111"
    )


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
        producer_client(KplConfig.from_config({"Region": "us-east-1"}))
    finally:
        remove_client_hook(hook)
    assert seen == ["kinesis", "dynamodb", "kinesis"]
