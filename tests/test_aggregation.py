"""KPL aggregation codec: wire format, exact sizes, interop with aws-kinesis-agg, KCL filtering."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kinesis_actors._aggregation import (
    MAGIC,
    MAX_HASH_KEY,
    AggregateBuilder,
    AggregatedMember,
    DecodedMember,
    _md5,
    deaggregate,
    decode,
    encode,
    hash_key,
    is_aggregated,
)

aggregator = pytest.importorskip("aws_kinesis_agg.aggregator")
deaggregator = pytest.importorskip("aws_kinesis_agg.deaggregator")

MIB = 1024 * 1024
Member = tuple[str, str | None, bytes]

# Aggregated records written by the real KPL (Java SampleKPLProducer), as published in the test
# data of awslabs/kinesis-aggregation (python/test/test_deagg.py), base64 of the record data.
KPL_WITH_EHKS = (
    "84mawgokZmMwM2RkODgtM2U3OS00NDhhLWIwMWEtN2NmMWJkNDdiNzg0CiRjYWU0MWIxYy1lYTYxLTQzZjItOTBiZS1i"
    "ODc1NWViZjg4ZTIKJGQ0OTA2OTBjLWU3NGQtNGRiMi1hM2M4LWQ4ZjJmMTg0ZmQyMwokYzkyNGJjMDktYjg1ZS00N2Yx"
    "LWIzMmUtMzM2NTIyZWU1M2M4EiYzODQ4NjQ5NTg2NzUwODM5OTA3ODE1OTcyMzg0NjA1MTgwNzAyMBInMTkzNzg3NjAw"
    "MDM3NjgxNzA2OTUyMTQzMzU3MDcxOTE2MzUyNjA0EicyNjY4ODA0MzY5NjQ5MzI0MjQyNjU0NjY5MTY3MzQwNjg2ODQ0"
    "MzkSJzMzOTYwNjYwMDk0Mjk2NzM5MTg1NDYwMzU1MjQwMjAyMTg0NzI5MhomCAAQABogUkVDT1JEIDIyIHBlZW9iaGN6"
    "YnpkbXNrYm91cGd5cQoaJggBEAEaIFJFQ09SRCAyMyB1c3dreGZ0eHJvZXVzc2N4c2pobm8KGiYIAhACGiBSRUNPUkQg"
    "MjQgY2FzZWhkZ2l2ZmF4ZXVzdGx5c3p5ChomCAMQAxogUkVDT1JEIDI1IG52ZmZ2cG11b2dkb3BqaGFtZXZyawpRwVPQ"
    "3go0yp4Y6kvM0q3V"
)
KPL_WITH_EHKS_MEMBERS = [
    (
        "fc03dd88-3e79-448a-b01a-7cf1bd47b784",
        "38486495867508399078159723846051807020",
        b"RECORD 22 peeobhczbzdmskboupgyq\n",
    ),
    (
        "cae41b1c-ea61-43f2-90be-b8755ebf88e2",
        "193787600037681706952143357071916352604",
        b"RECORD 23 uswkxftxroeusscxsjhno\n",
    ),
    (
        "d490690c-e74d-4db2-a3c8-d8f2f184fd23",
        "266880436964932424265466916734068684439",
        b"RECORD 24 casehdgivfaxeustlyszy\n",
    ),
    (
        "c924bc09-b85e-47f1-b32e-336522ee53c8",
        "339606600942967391854603552402021847292",
        b"RECORD 25 nvffvpmuogdopjhamevrk\n",
    ),
]
KPL_NO_EHKS = (
    "84mawgokNzhmZWIxMmEtZGJhMC00NWNhLWE5MWUtYmIxZjJmMTgxOWI0CiRjMmE3NTc4Ny00NjliLTQzMTAtODQwZC1k"
    "NDg2ZGNhN2ViNWUKJDY1MGU5MzYyLTU3MmItNDQyNy1iM2ZjLTEzNTQ5ZDdlNWFlNQokMWQ4ZDk2MDAtMDBiNy00NmYz"
    "LWE5ODMtZGU4MzQ3NzU0MGMwCiRmMmU3MThhMC0zODliLTQ5NGEtYjc5Ni0zMzU1YjA3NTY5Y2MKJDk2NWI4ZGE0LWE2"
    "YmQtNDc1NS04MWM5LWU3MTgxYWI3ZGM5YQokZDY5M2M1ZjAtNTc3Mi00NmM5LThkODYtMDhjNzA1NWJkYjc1CiQ4ZDky"
    "NDc2Yi1lYjg5LTRlODEtOTlmYi1jMmJhNjNhZDZkOTAaJAgAGiBSRUNPUkQgMTggaWtscnBzdnloeG5lcm9kZmVoZXJ1"
    "ChokCAEaIFJFQ09SRCAxOSBsbm1udWR5aHZwdmNncm9rZm16ZGgKGiQIAhogUkVDT1JEIDIwIHBqcXJjZmJ4YWZ6ZG5k"
    "em1iZ2FuZQoaJAgDGiBSRUNPUkQgMjEgYWFmcmV5cm50d3V3eGxpeWdrYmhrChokCAQaIFJFQ09SRCAyMiBxc2FhZGhi"
    "c2dtdnFnZGlmZ3V5b3UKGiQIBRogUkVDT1JEIDIzIHdqb2tvaXd2enpobGZ0bHpocWZqawoaJAgGGiBSRUNPUkQgMjQg"
    "em9wY2FzY3J0aGJicG5qaXd1aGpiChokCAcaIFJFQ09SRCAyNSB0eGJidm5venJ3c2JveHVvbXFib3EKvV1rrLdU+Sy2"
    "v8xkgZ5YaA=="
)
KPL_NO_EHKS_MEMBERS = [
    ("78feb12a-dba0-45ca-a91e-bb1f2f1819b4", None, b"RECORD 18 iklrpsvyhxnerodfeheru\n"),
    ("c2a75787-469b-4310-840d-d486dca7eb5e", None, b"RECORD 19 lnmnudyhvpvcgrokfmzdh\n"),
    ("650e9362-572b-4427-b3fc-13549d7e5ae5", None, b"RECORD 20 pjqrcfbxafzdndzmbgane\n"),
    ("1d8d9600-00b7-46f3-a983-de83477540c0", None, b"RECORD 21 aafreyrntwuwxliygkbhk\n"),
    ("f2e718a0-389b-494a-b796-3355b07569cc", None, b"RECORD 22 qsaadhbsgmvqgdifguyou\n"),
    ("965b8da4-a6bd-4755-81c9-e7181ab7dc9a", None, b"RECORD 23 wjokoiwvzzhlftlzhqfjk\n"),
    ("d693c5f0-5772-46c9-8d86-08c7055bdb75", None, b"RECORD 24 zopcascrthbbpnjiwuhjb\n"),
    ("8d92476b-eb89-4e81-99fb-c2ba63ad6d90", None, b"RECORD 25 txbbvnozrwsboxuomqboq\n"),
]
# Four records sharing one partition key and EHK: the KPL de-duplicates both tables.
KPL_SHARED_KEYS = (
    "84mawgoNMTU2MjYwMjA3NDg5NhInMzM5NjA2NjAwOTQyOTY3MzkxODU0NjAzNTUyNDAyMDIxODQ3MjkyGicIABAAGiFS"
    "RUNPUkQgMjAwNSBwanFyY2ZieGFmemRuZHptYmdhbmUaJwgAEAAaIVJFQ09SRCAyMDA2IHBqcXJjZmJ4YWZ6ZG5kem1i"
    "Z2FuZRonCAAQABohUkVDT1JEIDIwMDcgcGpxcmNmYnhhZnpkbmR6bWJnYW5lGicIABAAGiFSRUNPUkQgMjAwOCBwanFy"
    "Y2ZieGFmemRuZHptYmdhbmUHrLqXAgpJOT8v1lp81gM/"
)
KPL_SHARED_KEYS_MEMBERS = [
    (
        "1562602074896",
        "339606600942967391854603552402021847292",
        f"RECORD {n} pjqrcfbxafzdndzmbgane".encode(),
    )
    for n in (2005, 2006, 2007, 2008)
]

MIXED = [
    ("ключ-🔑", None, b"unicode key"),
    ("k", None, b""),
    ("k", "170141183460469231731687303715884105728", b"\x00\xff" * 100),
    ("other", "170141183460469231731687303715884105728", b"x"),
    ("ключ-🔑", None, b"again"),
    ("k", str(MAX_HASH_KEY), b""),
]


def _with_md5(body: bytes) -> bytes:
    return MAGIC + body + hashlib.md5(body).digest()


def _members(decoded: list[DecodedMember] | None) -> list[Member]:
    assert decoded is not None
    return [(m.partition_key, m.explicit_hash_key, m.data) for m in decoded]


def _their_aggregate(members: list[Member], max_size: int = MIB) -> bytes:
    agg = aggregator.AggRecord(max_size)
    for pk, ehk, data in members:
        assert agg.add_user_record(pk, data, ehk)
    return bytes(agg.get_contents()[2])


def _their_decode(blob: bytes, partition_key: str = "a") -> list[dict[str, Any]]:
    record = {
        "SequenceNumber": "49590338271490256608559692538361571095921575989136588898",
        "PartitionKey": partition_key,
        "ApproximateArrivalTimestamp": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        "Data": blob,
    }
    out = deaggregator.iter_deaggregate_records([record], data_format="Boto3")
    return [r["kinesis"] for r in out]


def _as_they_read(members: list[Member]) -> list[Member]:
    """aws-kinesis-agg 1.2.3 never checks whether a record has an EHK index: in an aggregate with
    any EHK, it reports the first table entry for members that have none."""
    first_ehk = next((ehk for _, ehk, _ in members if ehk is not None), None)
    return [(pk, first_ehk if ehk is None else ehk, data) for pk, ehk, data in members]


def _fill_to(builder: AggregateBuilder, partition_key: str, limit: int) -> bytes:
    """Data for one more member that brings the aggregate to exactly ``limit`` bytes."""
    room = limit - builder.size
    for n in range(room, room - 24, -1):
        data = bytes(n)
        if builder.size_if_added(partition_key, None, data) == limit:
            return data
    raise AssertionError("no data length reaches the limit exactly")


# --- hash keys -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("partition_key", "md5_hex"),
    [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("partition-key", "815704732fbc84217234bb5e45533daa"),
        ("ключ-🔑", "e9efceee734ec63dc2d27dd62a903477"),
    ],
)
def test_hash_key_is_md5_of_partition_key_big_endian(partition_key: str, md5_hex: str) -> None:
    assert hash_key(partition_key) == int(md5_hex, 16)
    assert hash_key(partition_key, None) == int(md5_hex, 16)


@pytest.mark.parametrize("ehk", ["0", "1", "123456789", str(MAX_HASH_KEY)])
def test_hash_key_prefers_explicit_hash_key(ehk: str) -> None:
    assert hash_key("ignored", ehk) == int(ehk)


def test_max_hash_key() -> None:
    assert MAX_HASH_KEY == 2**128 - 1 == int("f" * 32, 16)


# --- golden bytes ----------------------------------------------------------------------------


def test_hand_built_wire_format() -> None:
    members = [("a", None, b"x"), ("b", "123", b""), ("a", None, b"yz")]
    body = bytes.fromhex(
        "0a0161"  # partition_key_table "a"
        "0a0162"  # partition_key_table "b"
        "1203313233"  # explicit_hash_key_table "123"
        "1a05 0800 1a0178"  # record: pk 0, data "x"
        "1a06 0801 1000 1a00"  # record: pk 1, ehk 0, empty data
        "1a06 0800 1a02797a"  # record: pk 0 (de-duplicated), data "yz"
    )
    blob = encode(members)
    assert blob == MAGIC + body + hashlib.md5(body).digest()
    assert blob[:4] == b"\xf3\x89\x9a\xc2"
    assert decode(blob) == [
        DecodedMember("a", None, b"x", 0, True),
        DecodedMember("b", "123", b"", 1, True),
        DecodedMember("a", None, b"yz", 2, True),
    ]


@pytest.mark.parametrize(
    ("data_b64", "members"),
    [
        (KPL_WITH_EHKS, KPL_WITH_EHKS_MEMBERS),
        (KPL_NO_EHKS, KPL_NO_EHKS_MEMBERS),
        (KPL_SHARED_KEYS, KPL_SHARED_KEYS_MEMBERS),
    ],
    ids=["ehks", "no-ehks", "shared-keys"],
)
def test_real_kpl_output_decodes_and_reencodes_byte_for_byte(
    data_b64: str, members: list[Member]
) -> None:
    blob = base64.b64decode(data_b64)
    decoded = decode(blob)
    assert _members(decoded) == members
    assert decoded is not None
    assert [m.sub_sequence_number for m in decoded] == list(range(len(members)))
    assert all(m.aggregated for m in decoded)
    assert encode(members) == blob

    builder = AggregateBuilder()
    for member in members:
        builder.add(*member)
    assert builder.size == len(blob)
    assert builder.build() == blob


# --- round trips and interop -----------------------------------------------------------------


def test_round_trip_unicode_empty_explicit_and_repeated_keys() -> None:
    blob = encode(MIXED)
    assert _members(decode(blob)) == MIXED
    # De-duplicated: each distinct key is written once.
    assert blob.count("ключ-🔑".encode()) == 1
    assert blob.count(b"170141183460469231731687303715884105728") == 1
    assert blob.count(str(MAX_HASH_KEY).encode()) == 1


def test_encode_accepts_members_and_plain_tuples() -> None:
    as_members = [AggregatedMember(*m) for m in MIXED]
    assert encode(as_members) == encode(MIXED) == encode(iter(MIXED))


def test_aws_kinesis_agg_decodes_ours() -> None:
    theirs = _their_decode(encode(MIXED))
    assert [
        (r["partitionKey"], r["explicitHashKey"], base64.b64decode(r["data"])) for r in theirs
    ] == _as_they_read(MIXED)
    assert [r["subSequenceNumber"] for r in theirs] == list(range(len(MIXED)))
    assert all(r["aggregated"] for r in theirs)


def test_we_decode_aws_kinesis_agg() -> None:
    blob = _their_aggregate(MIXED)
    assert _members(decode(blob)) == MIXED
    # Both de-duplicate the same way and serialise in field order, so the bytes agree.
    assert blob == encode(MIXED)


def test_their_record_aggregator_output_decodes() -> None:
    members = [(f"pk-{i % 7}", None, bytes([i % 256]) * (i * 37 % 300)) for i in range(400)]
    agg = aggregator.RecordAggregator(max_size=4096)
    blobs = []
    for pk, ehk, data in members:
        full = agg.add_user_record(pk, data, ehk)
        if full is not None:
            blobs.append(full.get_contents()[2])
    blobs.append(agg.clear_and_get().get_contents()[2])
    assert len(blobs) > 1
    decoded = [m for blob in blobs for m in _members(decode(blob))]
    assert decoded == members


def test_exactly_one_mib_aggregate_interoperates() -> None:
    members: list[Member] = [("first", None, b"a" * 1000), ("second", None, b"")]
    builder = AggregateBuilder()
    for m in members:
        builder.add(*m)
    last = ("last", None, _fill_to(builder, "last", MIB))
    builder.add(*last)
    members.append(last)
    blob = builder.build()
    assert builder.size == len(blob) == MIB
    assert _members(decode(blob)) == members

    theirs = _their_decode(blob)
    assert [(r["partitionKey"], base64.b64decode(r["data"])) for r in theirs] == [
        (pk, data) for pk, _, data in members
    ]
    # aws-kinesis-agg also accepts the member that hits the limit exactly, with the same bytes.
    assert _their_aggregate(members, MIB) == blob


def test_one_member_filling_one_mib_alone() -> None:
    builder = AggregateBuilder()
    data = _fill_to(builder, "solo", MIB)
    builder.add("solo", None, data)
    blob = builder.build()
    assert len(blob) == MIB
    assert _members(decode(blob)) == [("solo", None, data)]
    assert builder.size_if_added("solo", None, b"") > MIB


def test_one_byte_more_than_the_limit_is_visible_before_adding() -> None:
    builder = AggregateBuilder()
    builder.add("first", None, b"x")
    data = _fill_to(builder, "last", MIB)
    assert builder.size_if_added("last", None, data + b"!") > MIB
    agg = aggregator.AggRecord(MIB)
    assert agg.add_user_record("first", b"x")
    assert not agg.add_user_record("last", data + b"!")


# --- exact sizes -----------------------------------------------------------------------------


def test_empty_builder() -> None:
    builder = AggregateBuilder()
    assert (builder.count, builder.size) == (0, 20)
    assert builder.first_hash_key is None
    with pytest.raises(ValueError, match="empty"):
        builder.build()
    with pytest.raises(ValueError, match="empty"):
        encode([])


def test_builder_reports_members_and_first_hash_key() -> None:
    builder = AggregateBuilder()
    builder.add("pk", None, b"1")
    builder.add("pk2", "42", b"2")
    assert builder.count == 2
    assert _members(decode(builder.build())) == [
        AggregatedMember("pk", None, b"1"),
        ("pk2", "42", b"2"),
    ]
    assert builder.first_hash_key == hash_key("pk")
    explicit_first = AggregateBuilder()
    explicit_first.add("pk", "7", b"")
    assert explicit_first.first_hash_key == 7


def test_sizes_across_varint_boundaries() -> None:
    """Table indexes past 127 and data lengths around 127/128 and 16383/16384 widen varints."""
    builder = AggregateBuilder()
    lengths = [0, 1, 127, 128, 129, 16383, 16384, 16385, 300]
    for i in range(400):
        pk = f"key-{i}" * (1 + i % 40)  # some keys longer than 127 bytes
        ehk = str(i * 1_000_003) if i % 3 == 0 else None
        data = bytes(lengths[i % len(lengths)]) if i % 11 == 0 else bytes(i % 200)
        expected = builder.size_if_added(pk, ehk, data)
        builder.add(pk, ehk, data)
        assert builder.size == expected
    assert len(builder.build()) == builder.size


keys = st.text(min_size=0, max_size=12)
records = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(["a", "b", "ключ", "🔑"]), keys),
        st.one_of(
            st.none(),
            st.sampled_from(["0", "1", str(MAX_HASH_KEY)]),
            st.integers(0, MAX_HASH_KEY).map(str),
        ),
        st.one_of(st.binary(max_size=200), st.integers(0, 17000).map(bytes)),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(records)
def test_size_is_exact_and_round_trips(members: list[Member]) -> None:
    builder = AggregateBuilder()
    for member in members:
        predicted = builder.size_if_added(*member)
        builder.add(*member)
        assert builder.size == predicted
    blob = builder.build()
    assert len(blob) == builder.size
    assert builder.count == len(members)
    assert _members(decode(blob)) == members
    assert builder.first_hash_key == hash_key(members[0][0], members[0][1])


@settings(max_examples=50, deadline=None)
@given(records)
def test_aws_kinesis_agg_reads_whatever_we_write(members: list[Member]) -> None:
    theirs = _their_decode(encode(members))
    assert [
        (r["partitionKey"], r["explicitHashKey"], base64.b64decode(r["data"])) for r in theirs
    ] == _as_they_read(members)


# --- invalid aggregates pass through raw -----------------------------------------------------


VALID = encode([("pk", None, b"payload"), ("pk2", "5", b"more")])


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(MAGIC, id="magic-only"),
        pytest.param(_with_md5(b""), id="no-protobuf-bytes"),
        pytest.param(b"plain user payload that is long enough", id="plain"),
        pytest.param(b"\x00" + VALID[1:], id="magic-mismatch"),
        pytest.param(VALID[:-1] + bytes([VALID[-1] ^ 1]), id="md5-mismatch"),
        pytest.param(VALID[:10] + bytes([VALID[10] ^ 1]) + VALID[11:], id="body-flipped"),
        pytest.param(VALID[:-1], id="truncated"),
        # Correct MD5 from here on: only the protobuf checks can reject these.
        pytest.param(_with_md5(b"\xff\xff\xff\xff"), id="garbage-protobuf"),
        pytest.param(_with_md5(bytes.fromhex("0a0161 1a05 0800 1a")), id="cut-record"),
        pytest.param(_with_md5(bytes.fromhex("0a0161 1a03 1a0178")), id="missing-pk-index"),
        pytest.param(_with_md5(bytes.fromhex("0a0161 1a02 0800")), id="missing-data"),
        pytest.param(
            _with_md5(bytes.fromhex("0a0161 1a05 0801 1a0178")), id="pk-index-out-of-range"
        ),
        pytest.param(
            _with_md5(bytes.fromhex("0a0161 1a07 0800 1000 1a0178")),
            id="ehk-index-without-table",
        ),
    ],
)
def test_invalid_aggregates_pass_through_raw(data: bytes) -> None:
    assert decode(data) is None
    assert not is_aggregated(data)
    assert deaggregate(data, "outer", "99") == [DecodedMember("outer", "99", data, 0, False)]
    # Not filtered either: the KCL applies the hash-range check to aggregates only.
    assert deaggregate(data, "outer", None, (0, 0)) == [
        DecodedMember("outer", None, data, 0, False)
    ]


def test_valid_aggregate_is_detected() -> None:
    assert is_aggregated(VALID)
    assert _members(decode(VALID)) == [("pk", None, b"payload"), ("pk2", "5", b"more")]


def test_zero_member_aggregate_is_valid_and_empty() -> None:
    blob = _with_md5(bytes.fromhex("0a0161"))
    assert decode(blob) == []


def test_invalid_utf8_key_is_replaced_like_java_protobuf() -> None:
    blob = _with_md5(bytes.fromhex("0a02fffe 1a05 0800 1a0178"))
    assert _members(decode(blob)) == [("\ufffd\ufffd", None, b"x")]


def test_unknown_fields_and_tags_are_ignored() -> None:
    tag = bytes.fromhex("2205 0a03") + b"key"
    record = bytes.fromhex("0800 1a0178") + tag
    body = bytes.fromhex("0a0161") + bytes([0x1A, len(record)]) + record + bytes.fromhex("f80101")
    assert _members(decode(_with_md5(body))) == [("a", None, b"x")]


# --- resharding filter -----------------------------------------------------------------------


EXPLICIT = encode([("p", "10", b"a"), ("q", "20", b"b"), ("r", "30", b"c")])


@pytest.mark.parametrize(
    ("hash_range", "kept"),
    [
        (None, 3),
        ((0, MAX_HASH_KEY), 3),
        ((10, 30), 3),
        ((11, 30), 0),
        ((10, 29), 0),
        ((15, 25), 0),
        ((31, 100), 0),
    ],
)
def test_member_outside_shard_drops_whole_aggregate(
    hash_range: tuple[int, int] | None, kept: int
) -> None:
    result = deaggregate(EXPLICIT, "a", "10", hash_range)
    assert len(result) == kept
    if kept:
        assert [m.sub_sequence_number for m in result] == [0, 1, 2]
        assert all(m.aggregated for m in result)


def test_filter_uses_partition_key_md5_without_explicit_hash_key() -> None:
    pks = ["alpha", "beta", "gamma", "alpha"]
    blob = encode([(pk, None, pk.encode()) for pk in pks])
    hashes = sorted(hash_key(pk) for pk in pks)
    assert len(deaggregate(blob, "a", None, (hashes[0], hashes[-1]))) == 4
    assert deaggregate(blob, "a", None, (hashes[0] + 1, MAX_HASH_KEY)) == []
    assert deaggregate(blob, "a", None, (0, hashes[-1] - 1)) == []


def test_filter_drops_aggregate_with_unparseable_explicit_hash_key() -> None:
    blob = encode([("p", None, b"a"), ("q", "not-a-number", b"b")])
    assert len(deaggregate(blob, "a")) == 2
    assert deaggregate(blob, "a", None, (0, MAX_HASH_KEY)) == []


def test_kpl_vector_filtered_by_its_shard_range() -> None:
    blob = base64.b64decode(KPL_WITH_EHKS)
    ehks = [int(ehk) for _, ehk, _ in KPL_WITH_EHKS_MEMBERS if ehk is not None]
    assert len(deaggregate(blob, "a", None, (min(ehks), max(ehks)))) == 4
    assert deaggregate(blob, "a", None, (0, 2**127)) == []


def _within_by_integers(members: list[Member], start: int, end: int) -> bool:
    """The filter as the KCL states it: every member's 128-bit key as an integer, in range."""
    for partition_key, explicit_hash_key, _ in members:
        try:
            key = hash_key(partition_key, explicit_hash_key)
        except ValueError:
            return False
        if not start <= key <= end:
            return False
    return True


_keys = st.sampled_from(["a", "b", "pk-1", "pk-2", "\u00e9t\u00e9", "\U0001f600", ""])
_ehks = st.one_of(
    st.none(),
    st.integers(min_value=0, max_value=MAX_HASH_KEY).map(str),
    st.sampled_from(["0", str(MAX_HASH_KEY), "-1", str(MAX_HASH_KEY + 1), "x", " 7"]),
)
_bounds = st.one_of(
    st.integers(min_value=0, max_value=MAX_HASH_KEY),
    st.sampled_from([-1, 0, 1, 2**127, MAX_HASH_KEY - 1, MAX_HASH_KEY, MAX_HASH_KEY + 1]),
    st.sampled_from(sorted({hash_key(k) + d for k in ["a", "b", "pk-1"] for d in (-1, 0, 1)})),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_keys, _ehks, st.just(b"d")), min_size=1, max_size=8), _bounds, _bounds)
def test_filter_agrees_with_the_integer_comparison(
    members: list[Member], start: int, end: int
) -> None:
    blob = encode(members)
    expected = members if _within_by_integers(members, start, end) else []
    assert _members(deaggregate(blob, "outer", None, (start, end))) == expected


def test_filter_bounds_are_inclusive_for_md5_keys() -> None:
    key = hash_key("pk-1")
    blob = encode([("pk-1", None, b"x"), ("pk-1", None, b"y")])
    assert len(deaggregate(blob, "a", None, (key, key))) == 2
    assert deaggregate(blob, "a", None, (key + 1, MAX_HASH_KEY)) == []
    assert deaggregate(blob, "a", None, (0, key - 1)) == []
    assert deaggregate(blob, "a", None, (key, key - 1)) == []  # an empty range holds nothing


def test_partition_key_md5_is_hashlibs() -> None:
    for key in (b"", b"pk-1", "\u00e9t\u00e9".encode(), b"x" * 300):
        assert _md5(key).digest() == hashlib.md5(key).digest()
