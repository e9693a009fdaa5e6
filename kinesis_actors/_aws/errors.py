"""What a failed AWS call means: its error code and message, throttling, fatal PutRecords codes,
a broken connection, and one short line for a person."""

from __future__ import annotations

import re

import botocore.exceptions
import urllib3.exceptions
from botocore.exceptions import ConnectionError as BotocoreConnectionError
from botocore.exceptions import HTTPClientError

__all__ = [
    "FATAL_PUT_ERROR_CODES",
    "THROTTLING_CODES",
    "describe_aws_error",
    "error_code",
    "error_message",
    "is_fatal_put_error",
    "is_throttling",
    "is_transport_error",
]

#: Error codes that mean "slow down" (Kinesis and DynamoDB) rather than "broken".
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)


def error_code(error: BaseException) -> str | None:
    """The service's error code of a failed call, or None when the call got no answer."""
    if isinstance(error, botocore.exceptions.ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return None


def error_message(error: BaseException) -> str:
    """The service's error message of a failed call, else the exception's text."""
    if isinstance(error, botocore.exceptions.ClientError):
        message = error.response.get("Error", {}).get("Message")
        if message:
            return str(message)
    return str(error)


def is_throttling(error: BaseException) -> bool:
    """AWS refused the call for a rate or capacity limit: back off, then try again."""
    return error_code(error) in THROTTLING_CODES


#: Error codes of PutRecords (the call, or one entry) that no retry can fix: the stream is
#: missing, the caller may not write to it, the request is malformed, or its KMS key cannot be
#: used. Records failing with one of these fail at once instead of retrying until RecordTtl.
#: (KMSThrottlingException is throttling, and retried.)
FATAL_PUT_ERROR_CODES = frozenset(
    {
        "AccessDeniedException",
        "InvalidArgumentException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSOptInRequired",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "ValidationException",
    }
)


def is_fatal_put_error(code: str | None) -> bool:
    """True when a PutRecords error code means every retry would fail the same way."""
    return code in FATAL_PUT_ERROR_CODES


_MAX_MESSAGE_WORDS = 12
_TAG = re.compile(r"<[^>]*>")


def _few_words(text: str) -> str:
    """A message cut to a few words: a server that is not AWS may answer with a whole page."""
    words = _TAG.sub(" ", text).split()
    cut = " ".join(words[:_MAX_MESSAGE_WORDS])
    return cut + (" ..." if len(words) > _MAX_MESSAGE_WORDS else "")


def describe_aws_error(error: BaseException) -> str:
    """One line for a failed AWS call: ``<code>: <message>``, or botocore's own sentence.

    An answer that is not AWS's (an HTTP status for a code, an HTML page for a message) says so.
    """
    code = error_code(error)
    if code is None:
        return _few_words(str(error))
    message = error_message(error)
    if code.isdigit() or message.lstrip().startswith("<"):
        return f"HTTP {code} that is not an AWS answer: {_few_words(message)}"
    return f"{code}: {_few_words(message)}" if message else code


def is_transport_error(error: BaseException) -> bool:
    """The connection failed or broke (timeout, reset, closed mid-stream): worth retrying."""
    return isinstance(
        error, urllib3.exceptions.HTTPError | HTTPClientError | BotocoreConnectionError | OSError
    )
