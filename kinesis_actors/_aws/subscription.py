"""SubscribeToShard: a subscription whose blocked read can be ended at once, and the errors that
say the endpoint does not serve it as botocore speaks it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from botocore.eventstream import ParserError

from kinesis_actors._aws.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

__all__ = ["Subscription", "is_protocol_error", "open_subscription"]

#: SubscribeToShard refused in a way that says the endpoint does not speak it as we do: not
#: served (kinesalite: UnknownOperationException, ministack: InvalidAction), or a request it
#: could not read. KCL maintainers traced ``InvalidArgumentException`` ("Invalid
#: StartingSequenceNumber") to SubscribeToShard over HTTP/1.1, which is what botocore speaks.
_PROTOCOL_ERROR_CODES = frozenset(
    {
        "UnknownOperationException",
        "UnknownOperation",
        "InvalidAction",
        "SerializationException",
        "InvalidArgumentException",
    }
)


def is_protocol_error(error: BaseException) -> bool:
    """The event stream could not be read (bad framing, no initial response), or the endpoint
    refused SubscribeToShard as not served or unreadable: retrying the same way will not help."""
    return isinstance(error, ParserError) or error_code(error) in _PROTOCOL_ERROR_CODES


class Subscription:
    """One SubscribeToShard response: its events, and a way to end a blocked read at once.

    botocore's ``EventStream.close()`` does not wake a thread blocked reading it (measured: the
    read returns only when the next event arrives, up to 5 s later). :meth:`interrupt` shuts the
    socket down for reading (urllib3's ``HTTPResponse.shutdown``), so the blocked read ends now.
    """

    def __init__(self, events: Any, raw: Any) -> None:
        self._events = events
        self._raw = raw

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._events)

    def interrupt(self) -> None:
        """End a read blocked on another thread (safe to call at any time, more than once)."""
        shutdown = getattr(self._raw, "shutdown", None)
        if shutdown is not None:
            try:
                shutdown()
            except (OSError, ValueError, RuntimeError):
                pass  # already closed or released

    def close(self) -> None:
        self._events.close()


_subscribe_response = threading.local()
_HOOK_ID = "kinesis-actors-subscription-raw-response"


def _keep_raw_response(http_response: Any, **_: Any) -> None:
    _subscribe_response.raw = getattr(http_response, "raw", None)


def open_subscription(kinesis: KinesisClient, **request: Any) -> Subscription:
    """Call SubscribeToShard and return its :class:`Subscription` (errors raise ClientError).

    The raw HTTP response is caught by an ``after-call`` hook of the client on the calling
    thread, so concurrent subscriptions on one client each get their own.
    """
    events = kinesis.meta.events
    events.register("after-call.kinesis.SubscribeToShard", _keep_raw_response, unique_id=_HOOK_ID)
    _subscribe_response.raw = None
    response = kinesis.subscribe_to_shard(**request)
    return Subscription(response["EventStream"], _subscribe_response.raw)
