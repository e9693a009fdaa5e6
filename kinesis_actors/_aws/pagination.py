"""Paginated listings: every shard of a stream, following NextToken."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kinesis_actors._stream_ref import StreamRef

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient
    from mypy_boto3_kinesis.type_defs import ShardFilterTypeDef, ShardTypeDef

__all__ = ["list_all_shards"]


def list_all_shards(
    client: KinesisClient,
    stream: str | StreamRef,
    *,
    shard_filter: ShardFilterTypeDef | None = None,
    page_size: int | None = None,
) -> list[ShardTypeDef]:
    """Every shard ListShards returns for the stream (a name, an ARN or a ``StreamRef``),
    following NextToken.

    A NextToken call must not repeat the stream (nor the filter). Emulators may ignore
    ``shard_filter``: callers that ask for open shards still check ``EndingSequenceNumber``.
    ``page_size`` is ListShards' MaxResults (the service's default when None).
    """
    page: dict[str, Any] = {} if page_size is None else {"MaxResults": page_size}
    first: dict[str, Any] = {**StreamRef.of(stream).request_args(), **page}
    if shard_filter is not None:
        first["ShardFilter"] = shard_filter
    response = client.list_shards(**first)
    shards = list(response.get("Shards", []))
    while token := response.get("NextToken"):
        response = client.list_shards(NextToken=token, **page)
        shards.extend(response.get("Shards", []))
    return shards
