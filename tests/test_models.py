from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinesis_actors._models import CompoundSequenceNumber, ConsumerEvent, ProducerEvent

sequence_numbers = st.integers(min_value=0, max_value=10**56 - 1).map(str)
sub_numbers = st.integers(min_value=0, max_value=2**32)


@given(sequence_numbers, sub_numbers, sequence_numbers, sub_numbers)
def test_ordering_is_numeric_on_the_tuple(a: str, x: int, b: str, y: int) -> None:
    left, right = CompoundSequenceNumber(a, x), CompoundSequenceNumber(b, y)
    expected = (int(a), x) < (int(b), y)
    assert (left < right) == expected
    assert (left == right) == ((int(a), x) == (int(b), y))
    assert (left >= right) == (not expected)


@given(st.lists(st.tuples(sequence_numbers, sub_numbers), min_size=1, max_size=30))
def test_sorting_matches_integer_sort(pairs: list[tuple[str, int]]) -> None:
    ordered = sorted(CompoundSequenceNumber(s, n) for s, n in pairs)
    assert [(int(c.sequence_number), c.sub_sequence_number) for c in ordered] == sorted(
        (int(s), n) for s, n in pairs
    )


def test_string_concatenation_bug_of_the_scala_library_is_gone() -> None:
    # ("1", 10) concatenated to "110" sorted below ("1", 2) -> "12" in the original.
    assert CompoundSequenceNumber("1", 10) > CompoundSequenceNumber("1", 2)
    # Different lengths: "9" < "10" numerically although "9" > "10" as strings.
    assert CompoundSequenceNumber("9", 0) < CompoundSequenceNumber("10", 0)


def test_leading_zeros_compare_and_hash_equal() -> None:
    assert CompoundSequenceNumber("007", 1) == CompoundSequenceNumber("7", 1)
    assert hash(CompoundSequenceNumber("007", 1)) == hash(CompoundSequenceNumber("7", 1))


@pytest.mark.parametrize("bad", ["", "12a", "-1", "1.5"])
def test_non_decimal_sequence_numbers_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="decimal digits"):
        CompoundSequenceNumber(bad, 0)


def test_negative_sub_sequence_is_rejected() -> None:
    with pytest.raises(ValueError, match="sub-sequence"):
        CompoundSequenceNumber("1", -1)


def test_producer_event_encodes_str_payloads_as_utf8() -> None:
    assert ProducerEvent("k", "héllo").data == "héllo".encode()
    assert ProducerEvent("k", b"\x00\x01").data == b"\x00\x01"


@given(st.text())
def test_consumer_event_payload_round_trip(text: str) -> None:
    event = ConsumerEvent(
        CompoundSequenceNumber("1"), text.encode(), datetime.now(UTC), "pk", "shardId-0"
    )
    assert event.payload_as_string() == text


def test_consumer_event_timestamps_are_utc() -> None:
    event = ConsumerEvent(CompoundSequenceNumber("1"), b"", datetime(2026, 1, 1), "pk", "s")
    assert event.timestamp.tzinfo is UTC


@given(sequence_numbers, sub_numbers)
def test_readers_fast_position_is_the_public_one(sequence_number: str, sub: int) -> None:
    public = CompoundSequenceNumber(sequence_number, sub)
    fast = CompoundSequenceNumber._trusted(sequence_number, sub, int(sequence_number))
    assert fast == public and hash(fast) == hash(public)
    assert not fast < public and not fast > public
    assert (fast.sequence_number, fast.sub_sequence_number) == (sequence_number, sub)
    assert repr(fast) == repr(public) and str(fast) == str(public)
    assert vars(fast) == vars(public)


def test_readers_fast_event_is_the_public_one() -> None:
    position = CompoundSequenceNumber("49680575801627832859960180891904532909477935108728029234", 3)
    when = datetime(2026, 11, 26, 6, 53, 9, 66000, tzinfo=UTC)
    for ehk in (None, "42"):
        public = ConsumerEvent(position, b"data", when, "pk", "shardId-0", ehk)
        fast = ConsumerEvent._trusted(position, b"data", when, "pk", "shardId-0", ehk)
        assert fast == public and repr(fast) == repr(public) and vars(fast) == vars(public)
        assert fast.payload_as_string() == "data"
    with pytest.raises(AttributeError):
        fast.payload = b"other"  # type: ignore[misc]


# -- issue 12: ProducerEvent checks its types at the door -----------------------------------------


@pytest.mark.parametrize(
    ("payload", "data"),
    [(b"raw", b"raw"), (bytearray(b"ba"), b"ba"), (memoryview(b"mv"), b"mv"), ("text", b"text")],
)
def test_producer_event_accepts_bytes_like_and_str_payloads(payload: object, data: bytes) -> None:
    event = ProducerEvent("key", payload)  # type: ignore[arg-type]
    assert event.data == data and type(event.data) is bytes


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("k", 5), "ProducerEvent.payload must be bytes, bytearray, memoryview or str, got int"),
        (("k", {"a": 1}), "ProducerEvent.payload must be .* got dict"),
        (("k", None), "ProducerEvent.payload must be .* got NoneType"),
        ((7, b"x"), "ProducerEvent.partition_key must be a str, got int"),
        ((b"k", b"x"), "ProducerEvent.partition_key must be a str, got bytes"),
        (("k", b"x", 12), "ProducerEvent.explicit_hash_key must be a str or None, got int"),
    ],
)
def test_producer_event_refuses_other_types_naming_field_and_type(
    args: tuple[object, ...], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        ProducerEvent(*args)  # type: ignore[arg-type]
