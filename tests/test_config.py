from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from kinesis_actors._config import (
    ConsumerConf,
    KplConf,
    ProducerConf,
    load_config,
    load_reference,
    to_seconds,
)
from kinesis_actors._errors import ConfigError

SEED_APPLICATION_CONF = """
kinesis {

   application-name = "YourApplicationName"

   # The name of the this producer, we can have many producers per application.
   # MUST contain the stream-name as a minimum. Any additional settings defined will override
   # defaults in the kinesis.producer reference.conf for this producer only.
   yourProducer {
      # The name of the producer stream
      stream-name = "core-test-kinesis-reliability"

      kpl {
         Region = us-east-1
      }
   }

   # The name of the consumer, we can have many consumers per application
   yourConsumer {
      checkpoint {
         # The amount of time to wait after failing to checkpoint, usually due to an exception or dynamo throttling.
         backoffMillis = 3000
         # The standard delay between (successful) checkpoints
         intervalMillis = 20000
         # The delay between notification messages sent to the parent to indicate we're ready to checkpoint
         # This is for subsequent messages after the initial notification,
         # for cases where the parent had no messages to checkpoint.
         notificationDelayMillis = 2000
      }

      kcl {
         initialPosition = "LATEST"
         stream-name = "core-test-kinesis-reliability"
         batchTimeoutSeconds = 300
      }
   }
}
"""


def test_reference_defaults_match_the_scala_library() -> None:
    ref = load_reference()["kinesis"]
    assert ref["application-name"] == "KinesisProducer"
    kpl = KplConf.from_config()
    assert kpl.aggregation_enabled is True
    assert kpl.aggregation_max_count == 4294967295
    assert kpl.aggregation_max_size == 51200
    assert kpl.collection_max_count == 500
    assert kpl.collection_max_size == 5242880
    assert kpl.rate_limit == 100
    assert kpl.record_max_buffered_time == pytest.approx(0.1)
    assert kpl.record_ttl == pytest.approx(30.0)
    assert kpl.max_connections == 24
    consumer = ConsumerConf.from_config(load_config("kinesis { c { stream-name = s } }"), "c")
    assert consumer.worker.batch_timeout == 10
    assert consumer.worker.failed_message_retries == 1
    assert consumer.worker.failure_tolerance_percentage == 0.25
    assert consumer.worker.graceful_shutdown_hook is True
    assert consumer.worker.shutdown_timeout == 25
    assert consumer.checkpointer.backoff == pytest.approx(3.0)
    assert consumer.checkpointer.interval == pytest.approx(2.0)
    assert consumer.checkpointer.notification_delay == pytest.approx(1.0)
    assert consumer.kcl.initial_position == "TRIM_HORIZON"
    assert consumer.kcl.max_records == 10000
    assert consumer.kcl.failover_time == pytest.approx(10.0)
    assert consumer.kcl.renewer_interval == pytest.approx(10 / 3 - 0.025)
    assert consumer.kcl.taker_interval == pytest.approx(20.05)


def test_named_block_falls_back_key_by_key() -> None:
    config = load_config(
        """
        kinesis {
          application-name = Orders
          default-producer.kpl.RecordTtl = 5000
          p1 { stream-name = orders, kpl { RateLimit = 80 } }
          p2 { stream-name = other }
        }
        """
    )
    p1 = ProducerConf.from_config(config["kinesis"], "p1")
    p2 = ProducerConf.from_config(config, "p2")  # the whole tree is accepted too
    assert (p1.kpl.rate_limit, p1.kpl.record_ttl) == (80, 5.0)
    assert (p2.kpl.rate_limit, p2.kpl.record_ttl) == (100, 5.0)
    assert p1.application_name == "Orders"
    assert p1.kpl.aggregation_max_size == 51200  # untouched defaults still there


def test_seed_readme_application_conf_loads_unchanged() -> None:
    config = load_config(SEED_APPLICATION_CONF)
    producer = ProducerConf.from_config(config["kinesis"], "yourProducer")
    assert producer.stream_name == "core-test-kinesis-reliability"
    assert producer.kpl.region == "us-east-1"
    assert producer.throttling is None
    with capture_logs() as logs:
        consumer = ConsumerConf.from_config(config["kinesis"], "yourConsumer")
    assert consumer.stream_name == "core-test-kinesis-reliability"
    assert consumer.kcl.initial_position == "LATEST"
    assert consumer.worker.batch_timeout == 300
    assert consumer.checkpointer.interval == pytest.approx(20.0)
    assert consumer.checkpointer.notification_delay == pytest.approx(2.0)
    assert consumer.table_name == "YourApplicationName-core-test-kinesis-reliability"
    moved = {entry["key"] for entry in logs if entry["event"].startswith("config key read")}
    assert "kinesis.yourConsumer.checkpoint" in moved


def test_missing_stream_name_names_the_key() -> None:
    config = load_config("kinesis { p { kpl { RateLimit = 100 } } }")
    with pytest.raises(ConfigError, match=r"kinesis\.p\.stream-name: is required"):
        ProducerConf.from_config(config, "p")


def test_unknown_block_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"kinesis\.nope: no such block"):
        ProducerConf.from_config(load_config(""), "nope")


def test_wrong_type_fails_at_load_naming_key_and_value() -> None:
    with pytest.raises(ConfigError) as error:
        load_config("kinesis { p { stream-name = s, kpl { AggregationEnabled = maybe } } }")
    assert error.value.path == "kinesis.p.kpl.AggregationEnabled"
    assert "'maybe'" in str(error.value)
    assert "true or false" in str(error.value)


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("CollectionMaxCount", "501", "1 .. 500"),
        ("MaxConnections", "0", "1 .. 256"),
        ("CollectionMaxSize", "100", "52224 .. "),
        ("RecordTtl", "50", "100 ms"),
        ("MetricsLevel", "verbose", "none, summary, detailed"),
        ("KinesisPort", "70000", "1 .. 65535"),
        ("LogSummaryInterval", "-1", "0 ms .. 600000 ms"),
    ],
)
def test_out_of_range_kpl_value_names_key_value_and_range(
    key: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(f"kinesis {{ p {{ stream-name = s, kpl {{ {key} = {value} }} }} }}")
    assert error.value.path == f"kinesis.p.kpl.{key}"
    assert value in str(error.value)
    assert allowed in str(error.value)


def test_bad_default_override_is_caught_at_load_too() -> None:
    with pytest.raises(ConfigError, match=r"kinesis\.default-consumer\.kcl\.maxRecords"):
        load_config("kinesis.default-consumer.kcl.maxRecords = 10001")


def test_unknown_kpl_key_warns_with_the_closest_known_key() -> None:
    with capture_logs() as logs:
        load_config("kinesis { p { stream-name = s, kpl { RateLimt = 50 } } }")
    unknown = [entry for entry in logs if entry["event"] == "unknown config key"]
    assert unknown == [
        {
            "event": "unknown config key",
            "key": "kinesis.p.kpl.RateLimt",
            "did_you_mean": "RateLimit",
            "log_level": "warning",
        }
    ]


def test_jvm_only_keys_are_accepted_with_one_warning_naming_them() -> None:
    with capture_logs() as logs:
        config = load_config(
            """
            kinesis {
              p { stream-name = s, akka.dispatcher = "my-dispatcher",
                  kpl { NativeExecutable = /opt/kpl, ThreadingModel = POOLED, EnableCoreDumps = true } }
              c { stream-name = s, kcl { maxLeaseRenewalThreads = 4 } }
            }
            """
        )
    warnings = [entry for entry in logs if entry["event"].startswith("config keys ignored")]
    assert len(warnings) == 1
    assert warnings[0]["keys"] == [
        "kinesis.c.kcl.maxLeaseRenewalThreads",
        "kinesis.p.akka.dispatcher",
        "kinesis.p.kpl.EnableCoreDumps",
        "kinesis.p.kpl.NativeExecutable",
        "kinesis.p.kpl.ThreadingModel",
    ]
    ProducerConf.from_config(config, "p")


def test_defaults_alone_produce_no_warning() -> None:
    with capture_logs() as logs:
        load_config("kinesis { p { stream-name = s }, c { stream-name = s, kcl.maxRecords = 5 } }")
    assert [entry for entry in logs if entry["log_level"] == "warning"] == []


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2500", 2.5),
        ("2500.0", 2.5),
        ("2 seconds", 2.0),
        ("2s", 2.0),
        ('"1.5 seconds"', 1.5),
        ('"20 SECONDS"', 20.0),
        ("250 ms", 0.25),
        ("250 millis", 0.25),
        ("1 minute", 60.0),
    ],
)
def test_durations_accept_milliseconds_and_hocon_forms(value: str, seconds: float) -> None:
    config = load_config(
        f"kinesis {{ c {{ stream-name = s, checkpointer.intervalMillis = {value} }} }}"
    )
    assert ConsumerConf.from_config(config, "c").checkpointer.interval == pytest.approx(seconds)


def test_to_seconds_handles_every_pyhocon_duration_type() -> None:
    from dateutil.relativedelta import relativedelta

    assert to_seconds(timedelta(milliseconds=100), 1e-3) == pytest.approx(0.1)
    assert to_seconds(relativedelta(seconds=20), 1e-3) == pytest.approx(20)
    assert to_seconds(7, 1.0) == 7.0
    with pytest.raises(ValueError, match="duration"):
        to_seconds("soon", 1.0)
    with pytest.raises(ValueError, match="boolean"):
        to_seconds(True, 1.0)


def test_seconds_keys_take_plain_numbers_as_seconds() -> None:
    config = load_config("kinesis { c { stream-name = s, worker.batchTimeoutSeconds = 3 } }")
    assert ConsumerConf.from_config(config, "c").worker.batch_timeout == 3.0


def test_env_override_and_late_substitution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINESIS_APPLICATION_NAME", "FromEnv")
    monkeypatch.setenv("MY_STREAM", "env-stream")
    config = load_config(
        """
        kinesis {
          default-producer.kpl.RecordMaxBufferedTime = 500
          p { stream-name = ${?MY_STREAM}, kpl.RecordTtl = ${kinesis.default-producer.kpl.RecordMaxBufferedTime} }
        }
        """
    )
    producer = ProducerConf.from_config(config, "p")
    assert producer.application_name == "FromEnv"
    assert producer.stream_name == "env-stream"
    assert producer.kpl.record_ttl == pytest.approx(0.5)  # saw the override, not the default 100


def test_lease_table_name_defaults_and_override() -> None:
    config = load_config(
        """
        kinesis {
          application-name = App
          a { stream-name = s1 }
          b { stream-name = s2, kcl.tableName = custom-table }
        }
        """
    )
    assert ConsumerConf.from_config(config, "a").table_name == "App-s1"
    assert ConsumerConf.from_config(config, "b").table_name == "custom-table"


def test_kcl_keys_match_case_insensitively_like_the_kcl() -> None:
    config = load_config(
        'kinesis { c { stream-name = s, kcl { KinesisEndpoint = "http://127.0.0.1:1", '
        'DynamoDBEndpoint = "http://127.0.0.1:2" } } }'
    )
    kcl = ConsumerConf.from_config(config, "c").kcl
    assert (kcl.kinesis_endpoint, kcl.dynamodb_endpoint) == (
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
    )


def test_at_timestamp_needs_its_timestamp() -> None:
    with pytest.raises(ConfigError, match="initialPositionInStreamTimestamp"):
        load_config("kinesis { c { stream-name = s, kcl.initialPositionInStream = AT_TIMESTAMP } }")
    config = load_config(
        "kinesis { c { stream-name = s, kcl { initialPositionInStream = AT_TIMESTAMP, "
        'initialPositionInStreamTimestamp = "2026-01-02T03:04:05Z" } } }'
    )
    kcl = ConsumerConf.from_config(config, "c").kcl
    assert kcl.initial_timestamp == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_producer_throttling_only_when_max_outstanding_is_set() -> None:
    config = load_config(
        "kinesis { p { stream-name = s, akka { max-outstanding-requests = 10, "
        "throttling-retry-millis = 50 } } }"
    )
    throttling = ProducerConf.from_config(config, "p").throttling
    assert throttling is not None
    assert (throttling.max_outstanding_requests, throttling.retry_interval) == (10, 0.05)


def test_kpl_block_on_its_own_like_the_seed_wrapper() -> None:
    kpl = KplConf.from_config(
        {
            "AggregationEnabled": False,
            "KinesisEndpoint": "127.0.0.1",
            "KinesisPort": 4567,
            "KinesisScheme": "http",
        }
    )
    assert kpl.aggregation_enabled is False
    assert kpl.endpoint_url == "http://127.0.0.1:4567"
    assert kpl.rate_limit == 100


def test_config_file_paths(tmp_path: Path) -> None:
    path = tmp_path / "application.conf"
    path.write_text("kinesis { p { stream-name = from-file } }")
    assert ProducerConf.from_config(load_config(path), "p").stream_name == "from-file"
    assert ProducerConf.from_config(load_config(str(path)), "p").stream_name == "from-file"
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(str(tmp_path / "missing.conf"))


def test_default_source_is_env_then_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "application.conf").write_text("kinesis.application-name = FromCwd")
    assert load_config()["kinesis"]["application-name"] == "FromCwd"
    other = tmp_path / "other.conf"
    other.write_text("kinesis.application-name = FromEnv")
    monkeypatch.setenv("KINESIS_ACTORS_CONFIG", str(other))
    assert load_config()["kinesis"]["application-name"] == "FromEnv"


def test_syntax_errors_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="cannot parse HOCON"):
        load_config("kinesis { p { ")
    with pytest.raises(ConfigError, match="cannot resolve"):
        load_config("kinesis { p { stream-name = ${does.not.exist} } }")


def test_settings_are_frozen() -> None:
    producer = ProducerConf.from_config(load_config("kinesis.p.stream-name = s"), "p")
    with pytest.raises(AttributeError):
        producer.stream_name = "other"  # type: ignore[misc]


def test_repository_reference_conf_is_the_package_file() -> None:
    root = Path(__file__).resolve().parent.parent
    assert (root / "reference.conf").read_text() == (
        root / "kinesis_actors" / "reference.conf"
    ).read_text()
