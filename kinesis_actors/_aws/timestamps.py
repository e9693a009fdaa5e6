"""Fast response timestamps: botocore's parser without dateutil, for what Kinesis and
DynamoDB send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.parsers import DEFAULT_TIMESTAMP_PARSER, ResponseParserFactory

__all__ = ["fast_timestamps_core", "utc_timestamp"]


def utc_timestamp(value: Any) -> datetime:
    """botocore's timestamp parser, without dateutil for the forms Kinesis and DynamoDB send.

    botocore's default turns every timestamp into a ``dateutil`` local-time datetime, which is
    most of the CPU of a GetRecords call (one ``ApproximateArrivalTimestamp`` per record). The
    JSON protocol sends epoch seconds as numbers: those (and numeric strings, and ISO 8601 with
    an offset) become the same instant as a UTC-aware datetime here. Anything else, or a value
    out of range, is left to the default, so nothing parses differently.
    """
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str):
            try:
                return datetime.fromtimestamp(float(value), UTC)
            except ValueError:
                pass
            if len(value) > 19 and value[10:11] == "T":
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is not None:
                    return parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        pass
    result: datetime = DEFAULT_TIMESTAMP_PARSER(value)
    return result


def fast_timestamps_core() -> botocore.session.Session:
    """A new botocore session whose clients parse timestamps with ``utc_timestamp``.

    It has a response parser factory of its own, so the change reaches no other session's
    clients; ``boto3.Session(botocore_session=...)`` is boto3's public way to build on it.
    """
    core = botocore.session.Session()
    factory = ResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=utc_timestamp)
    core.register_component("response_parser_factory", factory)
    return core
