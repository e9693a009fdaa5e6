"""Config that cannot be honoured is a ConfigError at load time, naming the full key path."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from kinesis_actors._aws import producer_client
from kinesis_actors._config import KplConf, load_config
from kinesis_actors._errors import ConfigError


@pytest.mark.parametrize(
    ("block", "key", "value"),
    [
        ("c", "worker.failureTolerancePercentage", "NaN"),
        ("c", "worker.failureTolerancePercentage", "Infinity"),
        ("c", "kcl.failoverTimeMillis", "1e400"),
        ("c", "kcl.idleTimeBetweenReadsInMillis", "-Infinity"),
        ("c", "checkpointer.intervalMillis", "nan"),
        ("p", "kpl.RecordTtl", "inf"),
        ("p", "kpl.RateLimit", "NaN"),
        ("p", "akka.throttling-retry-millis", "NaN"),
    ],
)
def test_nan_and_infinities_are_refused_naming_the_key(block: str, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(f"kinesis {{ {block} {{ stream-name = s, {key} = {value} }} }}")
    assert error.value.path == f"kinesis.{block}.{key}"


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("testConsumer { stream-name = s, kcl = 5 }", "kinesis.testConsumer.kcl"),
        ("testConsumer { stream-name = s, worker = [1, 2] }", "kinesis.testConsumer.worker"),
        ("testConsumer { stream-name = s, checkpointer = x }", "kinesis.testConsumer.checkpointer"),
        ("testProducer { stream-name = s, kpl = 5 }", "kinesis.testProducer.kpl"),
        ("testProducer { stream-name = s, kpl { x = 1 }, akka = [] }", "kinesis.testProducer.akka"),
        ("default-consumer.kcl = 5", "kinesis.default-consumer.kcl"),
    ],
)
def test_wrong_shapes_name_their_full_path(text: str, path: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(f"kinesis {{ {text} }}")
    assert error.value.path == path
    assert "must be an object" in str(error.value)


@pytest.mark.parametrize(
    ("akka", "key"),
    [
        ("max-outstanding-requests = 0", "max-outstanding-requests"),
        ("failed-send-retries = -1", "failed-send-retries"),
        ("max-queued-sends = many", "max-queued-sends"),
    ],
)
def test_a_producer_block_with_only_an_akka_section_is_checked_at_load(akka: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(f"kinesis {{ p {{ akka {{ {akka} }} }} }}")
    assert error.value.path == f"kinesis.p.akka.{key}"


def test_a_non_positive_renewal_interval_is_refused_naming_both_keys() -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            "kinesis { c { stream-name = s, kcl { failoverTimeMillis = 150, epsilonMillis = 50 } } }"
        )
    message = str(error.value)
    assert "kinesis.c.kcl.failoverTimeMillis" in message
    assert "kinesis.c.kcl.epsilonMillis" in message
    load_config(
        "kinesis { c { stream-name = s, kcl { failoverTimeMillis = 151, epsilonMillis = 50 } } }"
    )


def unknown_keys(text: str) -> list[tuple[str, str | None]]:
    with capture_logs() as logs:
        load_config(text)
    return [(e["key"], e["did_you_mean"]) for e in logs if e["event"] == "unknown config key"]


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        (
            "kinesis.p { stream-name = s, akka.max-outstanding-request = 10 }",
            "kinesis.p.akka.max-outstanding-request",
            "max-outstanding-requests",
        ),
        ("kinesis.p { stream-nam = s, kpl {} }", "kinesis.p.stream-nam", "stream-name"),
        ("kinesis.c { stream-name = s, kcl {}, wroker {} }", "kinesis.c.wroker", "worker"),
        (
            "kinesis.c { stream-name = s, worker.batchTimeoutSecond = 5 }",
            "kinesis.c.worker.batchTimeoutSecond",
            "batchTimeoutSeconds",
        ),
        ("kinesis.test.producer.batchSiz = 5", "kinesis.test.producer.batchSiz", "batchSize"),
        ("kinesis.test.consumr.pitstopCount = 5", "kinesis.test.consumr.pitstopCount", None),
        ("kinesis.aplication-name = App", "kinesis.aplication-name", "application-name"),
        (
            "kinesis.akka.default-dispatcher.throughputt = 5",
            "kinesis.akka.default-dispatcher.throughputt",
            "throughput",
        ),
        (
            "kinesis.default-producer.akka.max-outstanding-request = 5",
            "kinesis.default-producer.akka.max-outstanding-request",
            "max-outstanding-requests",
        ),
    ],
)
def test_unknown_keys_warn_with_the_closest_known_key_in_every_block(
    text: str, key: str, suggestion: str | None
) -> None:
    assert (key, suggestion) in unknown_keys(text)


def test_reference_and_sample_configs_have_no_unknown_keys() -> None:
    from kinesis_actors.reliability import load_reliability_config

    with capture_logs() as logs:
        load_config("")
        load_reliability_config("")
    assert [e for e in logs if e["log_level"] == "warning"] == []


@pytest.mark.parametrize(
    ("provider", "reason"),
    [
        ("com.example.TestCredentials|foo|bar", "not a credentials provider"),
        ("STSAssumeRoleSessionCredentialsProvider|arn:aws:iam::1:role/r", "needs"),
        ("STSAssumeRoleSessionCredentialsProvider|not-an-arn|session", "not an IAM role ARN"),
        ("StaticCredentialsProvider|only-key", "needs"),
        ("ProfileCredentialsProvider|a|b", "not a credentials provider"),
    ],
)
def test_a_credentials_provider_that_cannot_be_honoured_fails_at_load(
    provider: str, reason: str
) -> None:
    for block, key in (
        ("kpl", "AWSCredentialsProvider"),
        ("kcl", "AWSCredentialsProviderDynamoDB"),
    ):
        with pytest.raises(ConfigError, match=reason) as error:
            load_config(f'kinesis.x {{ stream-name = s, {block}.{key} = "{provider}" }}')
        assert error.value.path == f"kinesis.x.{block}.{key}"


def test_aws_region_is_honoured_when_aws_default_region_is_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-2")
    assert producer_client(KplConf.from_config({})).meta.region_name == "eu-west-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert producer_client(KplConf.from_config({})).meta.region_name == "ap-south-1"
    assert producer_client(KplConf.from_config({"Region": "us-west-1"})).meta.region_name == (
        "us-west-1"
    )
