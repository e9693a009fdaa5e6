"""What the producer and the consumer blocks share: a name, the application, and a stream.

``kinesis.<name>`` is laid over its ``default-*`` block; the stream is given by name, by ARN,
or both (which must agree).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Self

from pyhocon import ConfigTree

from kinesis_actors._config._blocks import application_name, resolve_named
from kinesis_actors._config._convert import string
from kinesis_actors._config._schema import read_settings, setting, settings
from kinesis_actors._errors import ConfigError
from kinesis_actors._stream_ref import StreamRef

__all__ = ["EntryConf", "addressed", "stream_arn", "stream_name"]


def stream_name(value: object) -> str:
    """A stream name; blank counts as unset (the entry point then asks for one)."""
    return string(value).strip()


def stream_arn(value: object) -> str:
    """A Kinesis stream ARN (``arn:aws:kinesis:<region>:<account>:stream/<name>``)."""
    return StreamRef.from_arn(string(value).strip()).arn or ""


def addressed(
    name: str, arn: str | None, path: str, arn_key: str = "stream-arn"
) -> StreamRef | None:
    """The stream of a block that may name it, give its ARN, or both (which must agree)."""
    if arn is None:
        return StreamRef(name) if name else None
    stream = StreamRef.from_arn(arn)
    if name and name != stream.name:
        raise ConfigError(
            f"{path}.stream-name",
            f"{name!r} is not the stream of {path}.{arn_key} = {arn!r}; set one of the two",
        )
    return stream


@settings
class EntryConf:
    """The fields and the resolution of a named block; subclasses add their own sections."""

    #: The block a named block falls back to (``default-producer`` or ``default-consumer``).
    DEFAULT_BLOCK: ClassVar[str]
    #: (section, field) of the region that a stream's ARN fills when it is unset.
    REGION_FIELD: ClassVar[tuple[str, str]]

    name: str
    application_name: str
    #: Filled from the stream's ARN when only the ARN is given.
    stream_name: str = setting("stream-name", stream_name, unset="")
    stream_arn: str | None = setting("stream-arn", stream_arn, unset=None)

    @classmethod
    def from_config(cls, kinesis_conf: ConfigTree, name: str) -> Self:
        """Resolve ``kinesis.<name>`` with a deep fallback to ``kinesis.<DEFAULT_BLOCK>``."""
        kinesis, block, path = resolve_named(kinesis_conf, name, cls.DEFAULT_BLOCK)
        conf = cls.from_block(kinesis, block, name, path)
        if not conf.stream_name:
            raise ConfigError(f"{path}.stream-name", "is required (the name of an existing stream)")
        return conf

    @classmethod
    def from_block(cls, kinesis: ConfigTree, block: ConfigTree, name: str, path: str) -> Self:
        """Read a named block already laid over its default (the stream may be unset)."""
        app = application_name(kinesis)
        return read_settings(cls, block, path, name=name, application_name=app)

    @property
    def stream(self) -> StreamRef:
        """The stream, for ``**stream.request_args()`` in every Kinesis call."""
        return StreamRef(self.stream_name, self.stream_arn)

    def addressed_to(self, stream: StreamRef | None) -> Self:
        """This block for ``stream``; the region of its ARN applies unless one is set."""
        if stream is None:
            return self
        section_name, field = self.REGION_FIELD
        section = getattr(self, section_name)
        if getattr(section, field) is None and stream.region is not None:
            section = dataclasses.replace(section, **{field: stream.region})
        return dataclasses.replace(
            self, stream_name=stream.name, stream_arn=stream.arn, **{section_name: section}
        )
