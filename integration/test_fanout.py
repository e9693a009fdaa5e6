"""Enhanced fan-out (kcl.retrievalMode = FANOUT): Kinesis on ministack, leases on dynalite.

What ministack cannot show (throttling, AWS's HTTP/2, CREATING consumers, a split that keeps the
parent's records) is listed in docs/fanout.rst; a consumer that is not ACTIVE yet is simulated
with a botocore hook on the consumer's own clients.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from integration.test_consumer import (
    Seen,
    WorkerProcess,
    owners,
    put,
    put_and_split_exactly_once,
    start_two_sharing,
    wait_for,
)
from kinesis_actors import FanoutError, StreamNotFoundError, metrics
from kinesis_actors._aws import add_client_hook, remove_client_hook
from kinesis_actors._config import load_config
from kinesis_actors._consumer import KinesisConsumer
from kinesis_actors._leases import DynamoDBLeaseTable
from kinesis_actors._models import ConsumerEvent, Sentinel
from kinesis_actors.testing._ministack import LocalMinistack

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient

    from kinesis_actors.testing._local import LocalKinesis

CONFIG = """
kinesis {{
  application-name = "{application}"
  it {{
    stream-name = "{stream}"
    worker {{ batchTimeoutSeconds = 5, gracefulShutdownHook = false, shutdownTimeoutSeconds = 5 }}
    checkpointer {{ intervalMillis = 100, notificationDelayMillis = 50 }}
    kcl {{
      retrievalMode = FANOUT
      kinesisEndpoint = "{endpoint}"
      failoverTimeMillis = 1000
      parentShardPollIntervalMillis = 100
      taskBackoffTimeMillis = 100
      shardSyncIntervalMillis = 500
      releasedLeasePollMillis = 100
      consumerStatusPollMillis = 50
      {extra}
    }}
  }}
}}
"""


def fanout_consumer(
    endpoint: str,
    stream: str,
    application: str,
    process: Callable[[ConsumerEvent], object],
    extra: str = "",
) -> KinesisConsumer:
    text = CONFIG.format(application=application, stream=stream, endpoint=endpoint, extra=extra)
    return KinesisConsumer(process, load_config(text), "it")


def application() -> str:
    return f"app-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def make_fanout_stream(
    ministack_kinesis: KinesisClient, unique_name: str
) -> Iterator[Callable[[int], str]]:
    """Factory of streams on ministack (ACTIVE at once there), deleted after the test."""
    created: list[str] = []

    def make(shard_count: int) -> str:
        name = f"{unique_name}-{len(created)}"
        ministack_kinesis.create_stream(StreamName=name, ShardCount=shard_count)
        created.append(name)
        return name

    yield make
    for name in created:
        ministack_kinesis.delete_stream(StreamName=name)


@dataclass(frozen=True)
class Fanout:
    """The session's ministack (Kinesis, at ``endpoint``) and dynalite (leases, in ``local``),
    and a factory of ministack streams deleted after the test."""

    local: LocalKinesis
    endpoint: str
    kinesis: KinesisClient
    stream: Callable[[int], str]


@pytest.fixture
def fanout(
    local_kinesis: LocalKinesis,
    local_ministack: LocalMinistack,
    ministack_kinesis: KinesisClient,
    make_fanout_stream: Callable[[int], str],
) -> Fanout:
    return Fanout(local_kinesis, local_ministack.endpoint, ministack_kinesis, make_fanout_stream)


def test_two_processes_share_the_shards_and_a_sigkilled_ones_shard_resumes_at_its_checkpoint(
    fanout: Fanout,
    workers: list[WorkerProcess],
) -> None:
    stream = fanout.stream(2)
    app = application()
    table = f"{app}-{stream}"
    env = {"AWS_ENDPOINT_URL_KINESIS": fanout.endpoint}
    a, b = start_two_sharing(
        fanout.local,
        table,
        lambda: WorkerProcess(stream, app, "--retrieval-mode", "FANOUT", env=env),
        workers,
        30,
    )
    by_a, by_b = put_and_split_exactly_once(fanout.kinesis, stream, a, b, 30)

    a.kill()  # SIGKILL: no final checkpoint, no release; b takes the lease when it expires
    survivor = owners(fanout.local, table)[by_b[0]["shard"]]
    wait_for(
        lambda: set(owners(fanout.local, table).values()) == {survivor},
        30,
        "the survivor owns both shards",
    )
    second = put(fanout.kinesis, stream, 200, "second")
    wait_for(
        lambda: {r["data"] for r in b.records()} >= set(second), 30, "records after the takeover"
    )
    time.sleep(0.3)
    after = b.records()[len(by_b) :]
    counts = Counter(r["data"] for r in after)
    assert all(counts[p] == 1 for p in second)  # nothing lost, nothing twice
    # Besides, only what a processed after its last checkpoint may come again (at-least-once).
    repeated = {p for p in counts if p not in second}
    assert repeated <= {r["data"] for r in by_a}
    assert all(counts[p] == 1 for p in repeated)
    assert b.stop() == 0


def test_subscriptions_that_end_or_are_taken_over_are_renewed_with_nothing_lost_or_repeated(
    local_kinesis: LocalKinesis,
) -> None:
    """Subscriptions live 2 s here (AWS: 5 minutes); another subscriber holds the shard at
    start: the consumer's first subscribe gets ResourceInUseException and is retried."""
    with LocalMinistack(subscription_seconds=2) as ministack:
        kinesis = ministack.kinesis_client()
        stream, app = "renewed", application()
        kinesis.create_stream(StreamName=stream, ShardCount=1)
        arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
            "StreamARN"
        ]
        consumer_arn = kinesis.register_stream_consumer(StreamARN=arn, ConsumerName=app)[
            "Consumer"
        ]["ConsumerARN"]

        held = kinesis.subscribe_to_shard(
            ConsumerARN=consumer_arn,
            ShardId="shardId-000000000000",
            StartingPosition={"Type": "LATEST"},
        )["EventStream"]
        metrics.in_memory().reset()
        seen = Seen()
        running = fanout_consumer(ministack.endpoint, stream, app, seen)
        running.start()
        try:
            wait_for(
                lambda: metrics.in_memory().total("FanoutSubscriptionsFailed") >= 1,
                20,
                "the consumer refused while the other subscription holds the shard",
            )
            held.close()
            sent: list[str] = []
            for round_ in range(16):
                sent += put(kinesis, stream, 25, f"r{round_}")
                time.sleep(0.5)
            wait_for(lambda: len(seen.payloads()) >= len(sent), 40, "every record processed")
            time.sleep(0.3)
            assert Counter(seen.payloads()) == Counter(sent)  # one owner: exactly once
            sink = metrics.in_memory()
            assert sink.total("FanoutSubscriptionsRenewed") >= 2
        finally:
            running.stop()


def test_a_split_mid_stream_starts_the_children_only_after_the_parents_shard_end(
    fanout: Fanout,
) -> None:
    """ministack deletes a parent's unread records at a split (AWS keeps them), so the parent's
    records are processed before the split here; UpdateShardCount there rebuilds the stream
    without parents, so the split is a SplitShard."""
    stream, app = fanout.stream(1), application()
    table = DynamoDBLeaseTable(fanout.local.dynamodb_client(), f"{app}-{stream}")
    parent = "shardId-000000000000"
    parent_at_first_child_record: list[object] = []
    seen = Seen()
    lock = threading.Lock()

    def process(event: ConsumerEvent) -> None:
        with lock:
            if event.shard_id != parent and not parent_at_first_child_record:
                leases = {lease.shard_id: lease for lease in table.list_leases()}
                parent_at_first_child_record.append(leases[parent].checkpoint)
        seen(event)

    running = fanout_consumer(fanout.endpoint, stream, app, process)
    running.start()
    try:
        before = put(fanout.kinesis, stream, 100, "before")
        wait_for(lambda: len(seen.payloads()) >= 100, 30, "the parent's records processed")
        fanout.kinesis.split_shard(
            StreamName=stream, ShardToSplit=parent, NewStartingHashKey=str(2**127)
        )
        after = put(fanout.kinesis, stream, 100, "after")
        wait_for(lambda: len(seen.payloads()) >= 200, 30, "the children's records processed")
        time.sleep(0.3)
        assert Counter(seen.payloads()) == Counter(before + after)
        with seen.lock:
            shards = {e.payload_as_string(): e.shard_id for e in seen.events}
        assert {shards[p] for p in before} == {parent}
        assert parent not in {shards[p] for p in after}
        assert parent_at_first_child_record == [Sentinel.SHARD_END]
    finally:
        running.stop()


class _StatusRewrite:
    """A client hook: the first ``times`` descriptions of a stream consumer say CREATING (or
    all, with ``times=None``), as AWS does for a few seconds after registration."""

    def __init__(self, times: int | None) -> None:
        self.times = times
        self.rewritten = 0

    def __call__(self, service: str, client: Any) -> None:
        if service == "kinesis":
            client.meta.events.register("after-call.kinesis.DescribeStreamConsumer", self._describe)
            client.meta.events.register("after-call.kinesis.RegisterStreamConsumer", self._register)

    def _rewrite(self, consumer: dict[str, Any]) -> None:
        if self.times is None or self.rewritten < self.times:
            self.rewritten += 1
            consumer["ConsumerStatus"] = "CREATING"

    def _describe(self, parsed: dict[str, Any], **_: Any) -> None:
        if "ConsumerDescription" in parsed:
            self._rewrite(parsed["ConsumerDescription"])

    def _register(self, parsed: dict[str, Any], **_: Any) -> None:
        if "Consumer" in parsed:
            self._rewrite(parsed["Consumer"])


def test_start_waits_for_an_active_consumer_and_fails_typed_when_it_never_is(
    fanout: Fanout,
) -> None:
    stream = fanout.stream(1)
    hook = _StatusRewrite(times=3)
    add_client_hook(hook)
    seen = Seen()
    try:
        running = fanout_consumer(fanout.endpoint, stream, application(), seen)
        done = running.start()
        try:
            assert hook.rewritten == 3 and not done.done()  # start() returned once ACTIVE
            sent = put(fanout.kinesis, stream, 20, "x")
            wait_for(lambda: len(seen.payloads()) >= 20, 30, "records processed")
            assert sorted(seen.payloads()) == sorted(sent)
        finally:
            running.stop()
    finally:
        remove_client_hook(hook)

    never = _StatusRewrite(times=None)
    add_client_hook(never)
    try:
        stuck = fanout_consumer(
            fanout.endpoint,
            stream,
            application(),
            seen,
            extra="consumerActiveTimeoutMillis = 300",
        )
        error = stuck.start().exception(timeout=30)
        assert isinstance(error, FanoutError) and "kcl.consumerActiveTimeoutMillis" in str(error)
    finally:
        remove_client_hook(never)


def test_a_missing_stream_fails_start_with_stream_not_found(
    local_kinesis: LocalKinesis, local_ministack: LocalMinistack
) -> None:
    missing = fanout_consumer(local_ministack.endpoint, "no-such-stream", application(), Seen())
    error = missing.start().exception(timeout=30)
    assert isinstance(error, StreamNotFoundError) and error.stream == "no-such-stream"


class _NotServed:
    """A client hook: SubscribeToShard answers UnknownOperationException (what an endpoint that
    does not serve it says, e.g. kinesalite), without reaching the server."""

    def __call__(self, service: str, client: Any) -> None:
        if service == "kinesis":
            client.meta.events.register("before-call.kinesis.SubscribeToShard", self._refuse)

    @staticmethod
    def _refuse(**_: Any) -> tuple[Any, dict[str, Any]]:
        error = {"Code": "UnknownOperationException", "Message": "not served"}
        return SimpleNamespace(status_code=400, headers={}, raw=None), {"Error": error}


def test_a_protocol_failure_falls_back_to_polling_or_fails_the_consumer_when_told_not_to(
    fanout: Fanout,
) -> None:
    stream = fanout.stream(2)
    hook = _NotServed()
    add_client_hook(hook)
    metrics.in_memory().reset()
    try:
        seen = Seen()
        running = fanout_consumer(fanout.endpoint, stream, application(), seen)
        running.start()
        try:
            sent = put(fanout.kinesis, stream, 100, "polled")
            wait_for(lambda: len(seen.payloads()) >= 100, 30, "records read by polling")
            time.sleep(0.3)
            assert Counter(seen.payloads()) == Counter(sent)
            assert metrics.in_memory().total("FanoutFallbacks") == 2  # once per shard
        finally:
            running.stop()

        strict = fanout_consumer(
            fanout.endpoint,
            stream,
            application(),
            Seen(),
            extra="fanoutFallbackToPolling = false",
        )
        error = strict.start().exception(timeout=60)  # the shard fails; restarts; the policy
        assert isinstance(error, FanoutError) and "UnknownOperationException" in str(error)
    finally:
        remove_client_hook(hook)


def test_the_stream_consumer_is_kept_on_stop_unless_deregistration_is_asked_for(
    fanout: Fanout,
) -> None:
    stream = fanout.stream(1)
    arn = fanout.kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]

    def consumers() -> set[str]:
        listed = fanout.kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]
        return {c["ConsumerName"] for c in listed}

    kept, dropped = application(), application()
    for app, extra in ((kept, ""), (dropped, "deregisterConsumerOnStop = true")):
        running = fanout_consumer(fanout.endpoint, stream, app, Seen(), extra=extra)
        done = running.start()
        assert app in consumers()
        assert running.stop()
        assert done.exception() is None
    assert kept in consumers() and dropped not in consumers()
