"""The registered stream consumer that enhanced fan-out subscribes with.

On start (``kcl.retrievalMode = FANOUT``) the consumer finds its stream consumer by
DescribeStreamConsumer (stream ARN + ``kcl.consumerName``, default the application name, or
``kcl.consumerArn``), registers it when missing, and waits until it is ACTIVE (AWS: CREATING for
a few seconds), polling every ``kcl.consumerStatusPollMillis`` for at most
``kcl.consumerActiveTimeoutMillis``. A missing stream fails ``start()`` with
StreamNotFoundError (as polling does); a missing ``consumerArn`` or a consumer not ACTIVE in time
with FanoutError. Throttled control-plane calls
(``LimitExceededException``) are retried within the same deadline. The consumer is never
deregistered unless ``kcl.deregisterConsumerOnStop = true``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kinesis_actors._aws import error_code
from kinesis_actors._errors import FanoutError, StreamNotFoundError
from kinesis_actors._logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors._config import ConsumerConf
    from kinesis_actors._stream_ref import StreamRef

__all__ = ["deregister_stream_consumer", "ensure_stream_consumer"]

log = get_logger(__name__)

_THROTTLED = "LimitExceededException"
_NOT_FOUND = "ResourceNotFoundException"


class _Deadline:
    def __init__(self, conf: ConsumerConf) -> None:
        self.poll = conf.kcl.consumer_status_poll_interval
        self.timeout = conf.kcl.consumer_active_timeout
        self.at = time.monotonic() + self.timeout

    def wait(self, what: str) -> None:
        """Sleep one poll interval, or fail if that would pass the deadline."""
        if time.monotonic() + self.poll > self.at:
            raise FanoutError(f"{what} after {self.timeout:g} s (kcl.consumerActiveTimeoutMillis)")
        time.sleep(self.poll)


def _call(deadline: _Deadline, call: Callable[[], Any], what: str) -> Any:
    """``call()``, retried while throttled until the deadline."""
    while True:
        try:
            return call()
        except Exception as exc:
            if error_code(exc) != _THROTTLED:
                raise
            log.warning("throttled; retrying", call=what)
            deadline.wait(f"{what} still throttled")


def _stream_arn(kinesis: KinesisClient, stream: StreamRef, deadline: _Deadline) -> str:
    """The stream's ARN, from DescribeStreamSummary (which also says whether it exists)."""
    try:
        summary = _call(
            deadline,
            lambda: kinesis.describe_stream_summary(**stream.request_args()),
            "DescribeStreamSummary",
        )
    except Exception as exc:
        if error_code(exc) == _NOT_FOUND:
            raise StreamNotFoundError(str(stream)) from exc
        raise
    arn: str = summary["StreamDescriptionSummary"]["StreamARN"]
    return arn


def _describe(kinesis: KinesisClient, deadline: _Deadline, **key: str) -> dict[str, Any] | None:
    try:
        response = _call(
            deadline, lambda: kinesis.describe_stream_consumer(**key), "DescribeStreamConsumer"
        )
    except Exception as exc:
        if error_code(exc) == _NOT_FOUND:
            return None
        raise
    description: dict[str, Any] = response["ConsumerDescription"]
    return description


def _register(
    kinesis: KinesisClient, stream_arn: str, name: str, deadline: _Deadline
) -> dict[str, Any]:
    try:
        response = _call(
            deadline,
            lambda: kinesis.register_stream_consumer(StreamARN=stream_arn, ConsumerName=name),
            "RegisterStreamConsumer",
        )
    except Exception as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
        # Another process of the application registered it first.
        found = _describe(kinesis, deadline, StreamARN=stream_arn, ConsumerName=name)
        if found is None:
            raise FanoutError(f"stream consumer {name!r} is being deleted; retry later") from exc
        return found
    log.info("stream consumer registered", consumer=name, stream=stream_arn)
    registered: dict[str, Any] = response["Consumer"]
    return registered


def ensure_stream_consumer(kinesis: KinesisClient, conf: ConsumerConf) -> str:
    """The ARN of this consumer's ACTIVE stream consumer, registered if missing."""
    kcl = conf.kcl
    deadline = _Deadline(conf)
    if kcl.consumer_arn is not None:
        key = {"ConsumerARN": kcl.consumer_arn}
        consumer = _describe(kinesis, deadline, **key)
        if consumer is None:
            raise FanoutError(f"stream consumer {kcl.consumer_arn!r} not found (kcl.consumerArn)")
        name = consumer["ConsumerName"]
    else:
        stream_arn = _stream_arn(kinesis, conf.stream, deadline)
        name = kcl.consumer_name or conf.application_name
        key = {"StreamARN": stream_arn, "ConsumerName": name}
        consumer = _describe(kinesis, deadline, **key) or _register(
            kinesis, stream_arn, name, deadline
        )
    while consumer["ConsumerStatus"] != "ACTIVE":
        log.info(
            "waiting for the stream consumer", consumer=name, status=consumer["ConsumerStatus"]
        )
        deadline.wait(f"stream consumer {name!r} still {consumer['ConsumerStatus']}")
        described = _describe(kinesis, deadline, **key)
        if described is None:
            raise FanoutError(f"stream consumer {name!r} disappeared while waiting for ACTIVE")
        consumer = described
    arn: str = consumer["ConsumerARN"]
    log.info("stream consumer active", consumer=name, arn=arn)
    return arn


def deregister_stream_consumer(kinesis: KinesisClient, consumer_arn: str) -> None:
    """Deregister (``kcl.deregisterConsumerOnStop``); a consumer already gone is fine."""
    try:
        kinesis.deregister_stream_consumer(ConsumerARN=consumer_arn)
    except Exception as exc:
        if error_code(exc) != _NOT_FOUND:
            raise
    log.info("stream consumer deregistered", arn=consumer_arn)
