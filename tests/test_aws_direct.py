"""The direct DynamoDB path: where it is built (never where it could differ from the botocore
client), the CA bundle it trusts, and the responses it hands back. Sending is tested against
loopback servers in ``integration/test_direct_dynamodb.py``."""

from __future__ import annotations

import base64
import gc
import ssl
import weakref
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.handlers
import botocore.httpsession
import pytest

from kinesis_actors._aws import add_client_hook, consumer_clients, new_client, remove_client_hook
from kinesis_actors._aws.direct import (
    DirectDynamoDB,
    _decoded,
    _resolved_verify,
    _ssl_context,
    direct_dynamodb,
    direct_path_of,
    remember_direct_path,
)
from kinesis_actors._config import ConsumerConf, load_config

ENDPOINT = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))


@pytest.fixture
def no_stubs(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's built-in handlers without the before-send ones (moto adds one on import)."""
    handlers = [h for h in botocore.handlers.BUILTIN_HANDLERS if not h[0].startswith("before-send")]
    monkeypatch.setattr(botocore.handlers, "BUILTIN_HANDLERS", handlers)


def _client(**config: Any) -> Any:
    return new_client(
        "dynamodb",
        region="us-east-1",
        endpoint_url=ENDPOINT,
        config=botocore.config.Config(**config) if config else None,
    )


def _direct(client: Any, verify: bool | str | None = None) -> DirectDynamoDB | None:
    return direct_dynamodb(client, boto3.Session(), verify=verify, user_agent="test")


@pytest.mark.usefixtures("no_stubs")
def test_built_when_nothing_could_differ() -> None:
    assert isinstance(_direct(_client()), DirectDynamoDB)


@pytest.mark.usefixtures("no_stubs")
@pytest.mark.parametrize(
    "config",
    [
        {"proxies": {"http": "http://proxy:3128"}},
        {"proxies_config": {"proxy_ca_bundle": "/tmp/ca.pem"}},
        {"client_cert": "/tmp/client.pem"},
    ],
)
def test_not_built_with_a_proxy_or_client_certificate(config: dict[str, Any]) -> None:
    assert _direct(_client(**config)) is None


@pytest.mark.usefixtures("no_stubs")
def test_not_built_when_the_environment_proxies_the_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    assert _direct(_client()) is None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # botocore would not proxy it either
    assert isinstance(_direct(_client()), DirectDynamoDB)


def test_not_built_beside_a_before_send_handler_of_botocore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def stub(**_: Any) -> None:
        return None

    monkeypatch.setattr(
        botocore.handlers,
        "BUILTIN_HANDLERS",
        [*botocore.handlers.BUILTIN_HANDLERS, ("before-send", stub)],
    )
    assert _direct(_client()) is None


def _consumer_conf() -> ConsumerConf:
    return ConsumerConf.from_config(
        load_config(
            f'kinesis.c {{ stream-name = s, kcl {{ regionName = us-east-1, dynamoDBEndpoint = "{ENDPOINT}" }} }}'
        ),
        "c",
    )


@pytest.mark.usefixtures("no_stubs")
def test_the_consumer_client_gets_one_unless_a_client_hook_is_registered() -> None:
    _, dynamodb = consumer_clients(_consumer_conf().kcl)
    assert direct_path_of(dynamodb) is not None

    def hook(service: str, client: Any) -> None:
        return None

    add_client_hook(hook)
    try:
        _, hooked = consumer_clients(_consumer_conf().kcl)
    finally:
        remove_client_hook(hook)
    assert direct_path_of(hooked) is None  # the hook is to see every call
    assert direct_path_of(_client()) is None  # only the consumer's client factory builds them


def test_the_ca_bundle_is_resolved_as_botocore_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    session = boto3.Session()
    assert _resolved_verify(session, None) is True
    assert _resolved_verify(session, False) is False
    assert _resolved_verify(session, "/given.pem") == "/given.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/requests.pem")
    assert _resolved_verify(session, None) == "/requests.pem"
    (tmp_path / "config").write_text("[profile p]\nca_bundle = /profile.pem\n")
    assert _resolved_verify(boto3.Session(profile_name="p"), None) == "/profile.pem"
    monkeypatch.setenv("AWS_CA_BUNDLE", "/aws.pem")
    assert _resolved_verify(session, None) == "/aws.pem"


def test_the_tls_context_trusts_botocores_bundle() -> None:
    default = _ssl_context(True)
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname
    expected = ssl.create_default_context(cafile=botocore.httpsession.get_cert_path(True))
    assert default.cert_store_stats() == expected.cert_store_stats()
    unchecked = _ssl_context(False)
    assert unchecked.verify_mode == ssl.CERT_NONE and not unchecked.check_hostname


def test_binary_attributes_are_decoded_as_botocore_parses_them() -> None:
    encoded = base64.b64encode(b"\x00\x01").decode()
    assert _decoded({"B": encoded}) == {"B": b"\x00\x01"}
    assert _decoded({"BS": [encoded]}) == {"BS": [b"\x00\x01"]}
    nested = {"M": {"a": {"L": [{"B": encoded}, {"N": "1"}]}, "s": {"SS": ["x"]}}}
    assert _decoded(nested) == {
        "M": {"a": {"L": [{"B": b"\x00\x01"}, {"N": "1"}]}, "s": {"SS": ["x"]}}
    }
    assert _decoded({"N": "12"}) == {"N": "12"}


@pytest.mark.usefixtures("no_stubs")
def test_the_registry_does_not_keep_a_client_alive() -> None:
    client = _client()
    remember_direct_path(client, _direct(client))
    assert direct_path_of(client) is not None
    gone = weakref.ref(client)
    del client
    gc.collect()
    assert gone() is None  # the path holds no reference to its client
