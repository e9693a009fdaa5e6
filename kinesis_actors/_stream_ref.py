"""Which stream a call is about: by name, or by ARN (another account, or the KCL's spelling).

Every Kinesis call takes ``**stream.request_args()``, so a stream given by ARN is addressed by
``StreamARN`` everywhere (which is what cross-account access needs) and one given by name by
``StreamName``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["StreamRef"]

_ARN = re.compile(
    r"^arn:(aws[a-z-]*):kinesis:([a-z0-9-]+):([0-9]{12}):stream/([A-Za-z0-9_.-]{1,128})$"
)


@dataclass(frozen=True)
class StreamRef:
    """A stream: ``name`` always (from the ARN when given by ARN), ``arn`` when given."""

    name: str
    arn: str | None = None

    @classmethod
    def of(cls, stream: str | StreamRef) -> StreamRef:
        """A stream name or ARN as typed on a command line, or a ``StreamRef`` as it is."""
        if isinstance(stream, StreamRef):
            return stream
        return cls.from_arn(stream) if stream.startswith("arn:") else cls(stream)

    @classmethod
    def from_arn(cls, arn: str) -> StreamRef:
        """``ValueError`` unless ``arn`` is a Kinesis stream ARN."""
        match = _ARN.match(arn)
        if match is None:
            raise ValueError(
                f"{arn!r} is not a Kinesis stream ARN "
                "(arn:aws:kinesis:<region>:<12-digit account>:stream/<name>)"
            )
        return cls(match.group(4), arn)

    @property
    def region(self) -> str | None:
        """The region in the ARN (None for a stream given by name)."""
        return _ARN.match(self.arn).group(2) if self.arn else None  # type: ignore[union-attr]

    @property
    def account(self) -> str | None:
        """The account id in the ARN (None for a stream given by name)."""
        return _ARN.match(self.arn).group(3) if self.arn else None  # type: ignore[union-attr]

    def request_args(self) -> dict[str, Any]:
        """``{"StreamARN": arn}`` or ``{"StreamName": name}``, for any Kinesis call."""
        return {"StreamARN": self.arn} if self.arn else {"StreamName": self.name}

    def arn_args(self) -> dict[str, Any]:
        """``{"StreamARN": arn}`` or nothing: for calls that take only the ARN (GetRecords)."""
        return {"StreamARN": self.arn} if self.arn else {}

    def __str__(self) -> str:
        return self.arn or self.name
