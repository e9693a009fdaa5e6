"""``tail`` reads through the consumer's ShardReader: ListShards pages, an iterator that expires
mid-read, and reshards (a split, then a merge) whose children are printed after their parents."""

from __future__ import annotations

from typing import Any

import pytest
from test_consumer_support import MAX_HASH, FakeKinesis

from kinesis_actors._cli import main
from kinesis_actors._cli import tail as tail_module
from kinesis_actors._cli.tail import read_stream

HALF = MAX_HASH // 2


class PagedKinesis(FakeKinesis):
    """One shard per ListShards page, two records per GetRecords call, and the ``expire``
    shard's n-th GetRecords call refused with ExpiredIteratorException."""

    def __init__(self, expire: tuple[str, int] | None = None) -> None:
        super().__init__()
        self.expire = expire
        self.on_read: dict[str, Any] = {}
        self._reads: dict[str, int] = {}

    def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(("list_shards", kwargs))
        shards = super().list_shards()["Shards"]
        index = int(kwargs.get("NextToken", "0"))
        page: dict[str, Any] = {"Shards": shards[index : index + 1]}
        if index + 1 < len(shards):
            page["NextToken"] = str(index + 1)
        return page

    def get_records(self, **kwargs: Any) -> dict[str, Any]:
        shard_id = kwargs["ShardIterator"].rsplit(":", 2)[0]
        self._reads[shard_id] = self._reads.get(shard_id, 0) + 1
        if (shard_id, self._reads[shard_id]) == self.expire:
            self.expire_next = True
        if hook := self.on_read.pop(shard_id, None):
            hook()
        return super().get_records(**{**kwargs, "Limit": 2})


def fill(kinesis: FakeKinesis, shard_id: str, count: int) -> list[str]:
    return [
        f"{shard_id}/{n}" for n in range(count) if kinesis.put(shard_id, f"{shard_id}/{n}".encode())
    ]


def printed(
    kinesis: FakeKinesis, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> list[tuple[str, str]]:
    monkeypatch.setattr(tail_module, "new_client", lambda *args, **kwargs: kinesis)
    assert main(["tail", "stream", "--region", "us-east-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    return [(line.split(" ", 1)[0], line.split("\t", 1)[1]) for line in lines]


def test_expiry_pages_and_reshards_print_every_record_once_in_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kinesis = PagedKinesis(expire=("parent", 2))  # mid-read: after 2 of its 7 records
    kinesis.add_shard("parent")
    kinesis.add_shard("left", parents=("parent",), hash_range=(0, HALF))
    kinesis.add_shard("right", parents=("parent",), hash_range=(HALF + 1, MAX_HASH))
    kinesis.add_shard("merged", parents=("left", "right"))
    kinesis.add_shard("other")  # open, unrelated
    written = {
        "parent": fill(kinesis, "parent", 7),
        "left": fill(kinesis, "left", 5),
        "right": fill(kinesis, "right", 1),
        "merged": fill(kinesis, "merged", 3),
        "other": fill(kinesis, "other", 4),
    }
    for shard_id in ("parent", "left", "right"):
        kinesis.close(shard_id)

    lines = printed(kinesis, monkeypatch, capsys)

    assert len(lines) == sum(map(len, written.values()))
    for shard_id, payloads in written.items():
        assert [data for shard, data in lines if shard == shard_id] == payloads
    positions = {data: index for index, (_, data) in enumerate(lines)}
    for child, parents in {
        "left": ["parent"],
        "right": ["parent"],
        "merged": ["left", "right"],
    }.items():
        first_child = positions[written[child][0]]
        assert all(positions[written[p][-1]] < first_child for p in parents)
    renewed = [
        args
        for name, args in kinesis.calls
        if name == "get_shard_iterator" and args["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    ]
    assert [(args["ShardId"], args["StartingSequenceNumber"]) for args in renewed] == [
        ("parent", "1001")
    ]
    assert (
        sum(1 for name, args in kinesis.calls if name == "list_shards" and "NextToken" in args) >= 4
    )


def test_a_shard_that_closes_while_read_continues_into_its_child() -> None:
    kinesis = PagedKinesis()
    kinesis.add_shard("open")
    fill(kinesis, "open", 1)

    def reshard() -> None:
        kinesis.close("open")
        kinesis.add_shard("child", parents=("open",))
        fill(kinesis, "child", 3)

    kinesis.on_read["open"] = reshard
    events = list(read_stream(kinesis, "stream"))  # type: ignore[arg-type]
    assert [(e.shard_id, e.payload) for e in events] == [
        ("open", b"open/0"),
        ("child", b"child/0"),
        ("child", b"child/1"),
        ("child", b"child/2"),
    ]
