"""The AWS boundary's error handling, throttling test, pagination and client factory."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from kinesis_actors._aws import (
    describe_aws_error,
    error_code,
    error_message,
    is_throttling,
    list_all_shards,
    new_client,
)
from kinesis_actors._errors import ConfigError
from kinesis_actors.testing import InMemoryKinesis


def client_error(code: str, message: str, operation: str = "ListShards") -> Exception:
    response: Any = {"Error": {"Code": code, "Message": message}}
    return botocore.exceptions.ClientError(response, operation)


def test_error_code_and_message_of_a_service_error() -> None:
    error = client_error("ResourceNotFoundException", "Stream s not found")
    assert error_code(error) == "ResourceNotFoundException"
    assert error_message(error) == "Stream s not found"
    assert error_code(RuntimeError("no answer")) is None
    assert error_message(RuntimeError("no answer")) == "no answer"


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
    ],
)
def test_throttling_codes(code: str) -> None:
    assert is_throttling(client_error(code, "slow down"))


def test_other_errors_are_not_throttling() -> None:
    assert not is_throttling(client_error("ResourceNotFoundException", "gone"))
    assert not is_throttling(RuntimeError("other"))


def test_a_service_error_is_one_line() -> None:
    error = client_error("ResourceNotFoundException", "Stream s under account 1 not found.")
    assert describe_aws_error(error) == (
        "ResourceNotFoundException: Stream s under account 1 not found."
    )


def test_an_answer_that_is_not_aws_is_cut_to_a_few_words() -> None:
    page = "<!DOCTYPE HTML>\n<html><head><title>Error response</title></head>\n" + (
        "<body>" + "word " * 500 + "</body></html>"
    )
    line = describe_aws_error(client_error("501", page))
    assert line.startswith("HTTP 501 that is not an AWS answer: Error response word")
    assert line.endswith(" ...")
    assert "\n" not in line
    assert len(line) < 150


def test_a_connection_error_keeps_botocore_sentence() -> None:
    error = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1/")
    assert describe_aws_error(error) == (
        'Could not connect to the endpoint URL: "http://127.0.0.1:1/"'
    )


def test_a_malformed_endpoint_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"kinesis endpoint: 'notaurl' is not a URL"):
        new_client("kinesis", region="us-east-1", endpoint_url="notaurl")


def test_a_malformed_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="region"):
        new_client("kinesis", region="not a region")


def test_list_all_shards_follows_next_token_and_passes_the_filter_once() -> None:
    kinesis = InMemoryKinesis(7, page_size=3)
    calls: list[dict[str, Any]] = []

    class Recording:
        def list_shards(self, **kwargs: Any) -> dict[str, Any]:
            calls.append(kwargs)
            return kinesis.list_shards(**kwargs)

    shards = list_all_shards(Recording(), "s", shard_filter={"Type": "AT_LATEST"})  # type: ignore[arg-type]
    assert len(shards) == 7
    assert calls[0]["ShardFilter"] == {"Type": "AT_LATEST"}
    assert calls[0]["StreamName"] == "s"
    assert all("StreamName" not in call and "ShardFilter" not in call for call in calls[1:])
    assert len(calls) == 3
