"""``kinesis-actors reliability``: the reliability test as one command, optionally under faults.

``run`` creates the stream, starts N consumer processes (each a SimpleKinesisConsumer writing
what it consumed to a results file before acknowledging), runs the SimpleKinesisProducer, injects
the chosen faults mid-run, stops the consumers gracefully, reads every results file and judges:
any lost integer, failed or unconfirmed send is failure; duplicates are reported. It cleans up the
stream and lease table it created.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import pykka

from kinesis_actors._aws import client_config, list_all_shards, new_client
from kinesis_actors._config import ConsumerConf, ProducerConf
from kinesis_actors._errors import KinesisActorsError
from kinesis_actors._logging import get_logger
from kinesis_actors.reliability._chaos import ThrottleInjector
from kinesis_actors.reliability._results import Verdict, judge, read_results
from kinesis_actors.reliability._settings import ReliabilitySettings, load_reliability_config

if TYPE_CHECKING:
    from kinesis_actors.reliability._producer import ProducerStats

__all__ = ["FAULTS", "RunOptions", "RunReport", "add_arguments", "run_reliability", "run_test"]

log = get_logger(__name__)

#: Fault scenarios of ``--chaos``.
FAULTS = ("sigkill", "graceful", "reshard", "throttle")
#: Injected throttling rates: PutRecords entries, GetRecords calls, lease-table writes.
THROTTLE_RATES = (0.10, 0.05, 0.10)
_THROTTLE_ENV = "KINESIS_ACTORS_INJECT_THROTTLING"
_STATUS_INTERVAL = 0.5


# -- consumer process -----------------------------------------------------------------------------


def run_consumer_process(args: argparse.Namespace) -> int:
    """One consumer process: consume until SIGTERM/SIGINT, printing JSON status lines."""
    from kinesis_actors.reliability._consumer import ConsumerState, GetState, SimpleKinesisConsumer

    injector = _injector_from_env()
    config = load_reliability_config(args.config)
    settings = ReliabilitySettings.from_config(config).with_overrides(
        expected_messages=args.messages, pitstop_count=0 if args.results else None
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    results = Path(args.results) if args.results else None
    consumer = SimpleKinesisConsumer.start(config, settings=settings, results_path=results)
    try:
        while not stop.wait(_STATUS_INTERVAL):
            state: ConsumerState = consumer.ask(GetState(), block=True)
            status: dict[str, Any] = {"consumed": state.consumed, "duplicates": state.duplicates}
            if injector is not None:
                status["injected"] = injector.injected
            print(json.dumps(status), flush=True)
            if not state.consumer_running:
                return 3  # the consumer died: the original exits with 3 too
            if state.succeeded is not None and results is None:
                return 0 if state.succeeded else 3
    finally:
        consumer.stop()
        if injector is not None:
            injector.uninstall()
    return 0


def _injector_from_env() -> ThrottleInjector | None:
    rates = os.environ.get(_THROTTLE_ENV)
    if not rates:
        return None
    put, get, lease = (float(part) for part in rates.split(","))
    injector = ThrottleInjector(put_entries=put, get_calls=get, lease_writes=lease)
    injector.install()
    return injector


# -- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunOptions:
    messages: int
    shards: int = 2
    consumers: int = 2
    faults: tuple[str, ...] = ()
    local: bool = True
    config: str | None = None
    timeout: float = 300.0
    #: Records per second the producer sends (batches every ``batchDelayMillis``); None keeps
    #: ``kinesis.test.producer.batchSize``. Faults only prove something while records flow.
    rate: int | None = None
    progress: IO[str] | None = None
    #: Keep the consumer logs, results files and config here instead of a temporary folder
    #: deleted at the end (created if missing; use an empty one: results files are appended to).
    keep_dir: Path | None = None


@dataclass
class RunReport:
    options: RunOptions
    verdict: Verdict | None = None
    sent: int = 0
    confirmed: int = 0
    failed: int = 0
    unconfirmed: int = 0
    producer_seconds: float = 0.0
    end_to_end_seconds: float = 0.0
    total_seconds: float = 0.0
    consumer_exits: list[int] = field(default_factory=list)
    injected: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return (
            self.error is None
            and self.verdict is not None
            and self.verdict.succeeded
            and self.failed == 0
            and self.unconfirmed == 0
        )

    def table(self) -> str:
        verdict = self.verdict
        rows = [
            ("messages", self.options.messages),
            ("shards / consumers", f"{self.options.shards} / {self.options.consumers}"),
            ("faults", ", ".join(self.options.faults) or "none"),
            ("sent / confirmed", f"{self.sent} / {self.confirmed}"),
            ("failed sends", self.failed),
            ("unconfirmed sends", self.unconfirmed),
            ("consumed (with duplicates)", verdict.consumed if verdict else "-"),
            ("unique", verdict.unique if verdict else "-"),
            ("duplicates", verdict.duplicates if verdict else "-"),
            ("lost", verdict.lost if verdict else "-"),
            (
                "records/s end to end",
                round(self.options.messages / self.end_to_end_seconds)
                if self.end_to_end_seconds
                else "-",
            ),
            (
                "lag p50 / p99 (ms)",
                f"{verdict.lag_p50_ms:.0f} / {verdict.lag_p99_ms:.0f}" if verdict else "-",
            ),
            (
                "longest pause in consumption (s)",
                f"{verdict.lag_max_ms / 1000:.1f}" if verdict else "-",
            ),
            (
                "throttles injected (put/get/lease)",
                "/".join(str(self.injected.get(k, 0)) for k in ("put", "get", "lease"))
                if "throttle" in self.options.faults
                else "-",
            ),
            (
                "verdict",
                "SUCCEEDED"
                if self.succeeded
                else f"FAILED{f' ({self.error})' if self.error else ''}",
            ),
        ]
        width = max(len(str(name)) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


class _ConsumerProcess:
    """A consumer subprocess and the status it prints."""

    def __init__(
        self,
        index: int,
        config_path: Path,
        results: Path,
        messages: int,
        env: dict[str, str],
        logs: Path,
    ) -> None:
        self.index = index
        self.results = results
        self.consumed = 0
        self.injected: dict[str, int] = {}
        self._log_file = (logs / f"consumer-{index}.log").open("ab")
        command = [
            sys.executable, "-m", "kinesis_actors._cli", "reliability", "consumer",
            "--config", str(config_path), "--results", str(results), "--messages", str(messages),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._log_file, env=env, text=True
        )
        self._reader = threading.Thread(target=self._read_status, daemon=True)
        self._reader.start()

    def _read_status(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with contextlib.suppress(ValueError, KeyError):
                status = json.loads(line)
                self.consumed = status["consumed"]
                self.injected = status.get("injected", self.injected)

    def terminate(self, timeout: float) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self._close()

    def kill(self) -> int:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        return self._close()

    def _close(self) -> int:
        self._reader.join(timeout=5)
        self._log_file.close()
        return self.process.returncode


def _write_config(path: Path, base: str | None, stream: str, application: str) -> None:
    text = Path(base).read_text() if base else ""
    path.write_text(
        f"""{text}
kinesis {{
  application-name = "{application}"
  testProducer.stream-name = "{stream}"
  testConsumer.stream-name = "{stream}"
}}
"""
    )


def _split_shard(kinesis: Any, stream: str) -> None:
    shard = next(
        s
        for s in list_all_shards(kinesis, stream)
        if "EndingSequenceNumber" not in s["SequenceNumberRange"]
    )
    start, end = (
        int(shard["HashKeyRange"]["StartingHashKey"]),
        int(shard["HashKeyRange"]["EndingHashKey"]),
    )
    kinesis.split_shard(
        StreamName=stream,
        ShardToSplit=shard["ShardId"],
        NewStartingHashKey=str((start + end) // 2 + 1),
    )
    log.info("chaos: split shard", shard_id=shard["ShardId"])


def _merge_shards(kinesis: Any, stream: str) -> None:
    open_shards = sorted(
        (
            s
            for s in list_all_shards(kinesis, stream)
            if "EndingSequenceNumber" not in s["SequenceNumberRange"]
        ),
        key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
    )
    for left, right in itertools.pairwise(open_shards):
        if int(left["HashKeyRange"]["EndingHashKey"]) + 1 == int(
            right["HashKeyRange"]["StartingHashKey"]
        ):
            kinesis.merge_shards(
                StreamName=stream,
                ShardToMerge=left["ShardId"],
                AdjacentShardToMerge=right["ShardId"],
            )
            log.info("chaos: merged shards", shards=[left["ShardId"], right["ShardId"]])
            return


def _wait_for_leases(dynamodb: Any, table: str, shards: int, owners: int, deadline: float) -> None:
    """Wait until every shard's lease is owned and balanced over ``owners`` workers.

    Producing earlier would make the first measurements about lease balancing: a worker that
    starts later steals leases from the first, which re-reads from the last checkpoint.
    """
    while time.monotonic() < deadline:
        with contextlib.suppress(dynamodb.exceptions.ResourceNotFoundException):
            items = dynamodb.scan(TableName=table, ConsistentRead=True).get("Items", [])
            counts = Counter(item["leaseOwner"]["S"] for item in items if "leaseOwner" in item)
            balanced = len(counts) >= owners and max(counts.values()) - min(counts.values()) <= 1
            if sum(counts.values()) >= shards and balanced:
                return
        time.sleep(0.2)
    raise KinesisActorsError(
        f"consumers did not take the {shards} leases of {table} ({owners} workers) in time"
    )


@contextlib.contextmanager
def _backend(local: bool) -> Iterator[dict[str, str]]:
    if not local:
        yield dict(os.environ)
        return
    from kinesis_actors.testing._local import LocalKinesis

    with LocalKinesis() as servers:
        saved = dict(os.environ)
        os.environ.update(servers.environ())
        try:
            yield dict(os.environ)
        finally:
            os.environ.clear()
            os.environ.update(saved)


@contextlib.contextmanager
def _workdir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        yield Path(tmp)


def run_test(options: RunOptions) -> RunReport:
    """Run the reliability test end to end and return its report."""
    started = time.monotonic()
    with _backend(options.local) as env, _workdir(options.keep_dir) as workdir:
        run = _Run(options, env, workdir)
        try:
            run.execute()
        finally:
            run.report.total_seconds = time.monotonic() - started
    return run.report


class _Run:
    """One reliability run: its stream, its consumer processes, its report."""

    def __init__(self, options: RunOptions, env: dict[str, str], workdir: Path) -> None:
        self.options = options
        self.report = RunReport(options)
        self.workdir = workdir
        self.stream = f"reliability-{uuid.uuid4().hex[:8]}"
        self.config_path = workdir / "reliability.conf"
        _write_config(
            self.config_path, options.config, self.stream, f"Reliability-{uuid.uuid4().hex[:6]}"
        )
        self.config = load_reliability_config(self.config_path)
        self.settings = ReliabilitySettings.from_config(self.config).with_overrides(
            expected_messages=options.messages,
        )
        if options.rate is not None:
            per_batch = max(1, round(options.rate * self.settings.batch_delay))
            self.settings = self.settings.with_overrides(batch_size=per_batch)
        producer_conf = ProducerConf.from_config(self.config, self.settings.producer_name)
        self.consumer_conf = ConsumerConf.from_config(self.config, self.settings.consumer_name)
        region = producer_conf.kpl.region or self.consumer_conf.kcl.region_name
        self.kinesis: Any = new_client("kinesis", region=region, config=client_config(tries=5))
        self.dynamodb: Any = new_client("dynamodb", region=region, config=client_config(tries=5))
        self.env = dict(env)
        if "throttle" in options.faults:
            self.env[_THROTTLE_ENV] = ",".join(str(rate) for rate in THROTTLE_RATES)
        self.consumers: list[_ConsumerProcess] = []
        self.stopped: list[_ConsumerProcess] = []

    def execute(self) -> None:
        self.kinesis.create_stream(StreamName=self.stream, ShardCount=self.options.shards)
        self.kinesis.get_waiter("stream_exists").wait(
            StreamName=self.stream, WaiterConfig={"Delay": 1}
        )
        injector: ThrottleInjector | None = None
        try:
            for _ in range(self.options.consumers):
                self.consumers.append(self._consumer())
            _wait_for_leases(
                self.dynamodb,
                self.consumer_conf.table_name,
                self.options.shards,
                min(self.options.shards, self.options.consumers),
                time.monotonic() + 60,
            )
            # A worker that lost a lease to a steal learns it at its next renewal; until then
            # both would read the shard (the KCL's zombie window). Start on a settled fleet.
            time.sleep(self.consumer_conf.kcl.renewer_interval + 0.5)
            if "throttle" in self.options.faults:
                injector = ThrottleInjector(put_entries=THROTTLE_RATES[0])
                injector.install()
            self._produce_and_watch()
        except KinesisActorsError as exc:
            self.report.error = str(exc)
        finally:
            if injector is not None:
                injector.uninstall()
            self._finish()
            for source in [injector.injected if injector else {}] + [
                c.injected for c in self.consumers + self.stopped
            ]:
                for kind, count in source.items():
                    self.report.injected[kind] = self.report.injected.get(kind, 0) + count

    def _consumer(self) -> _ConsumerProcess:
        index = len(self.consumers) + len(self.stopped)
        return _ConsumerProcess(
            index,
            self.config_path,
            self.workdir / f"consumer-{index}.bin",
            self.options.messages,
            self.env,
            self.workdir,
        )

    def _finish(self) -> None:
        timeout = self.consumer_conf.worker.shutdown_timeout + 5
        self.report.consumer_exits = [c.terminate(timeout) for c in self.consumers]
        everyone = self.consumers + self.stopped
        entries = [entry for c in everyone for entry in read_results(c.results)]
        self.report.verdict = judge(self.options.messages, entries)
        with contextlib.suppress(Exception):
            self.kinesis.delete_stream(StreamName=self.stream)
        with contextlib.suppress(Exception):
            self.dynamodb.delete_table(TableName=self.consumer_conf.table_name)

    def _consumed(self) -> int:
        return sum(c.consumed for c in self.consumers + self.stopped)

    def _unique_consumed(self) -> int:
        everyone = self.consumers + self.stopped
        return len({value for c in everyone for value, _ in read_results(c.results) if value >= 0})

    def _produce_and_watch(self) -> None:
        from kinesis_actors.reliability._producer import SimpleKinesisProducer, Start

        options, report = self.options, self.report
        producer = SimpleKinesisProducer.start(self.config, settings=self.settings)
        producer.tell(Start())
        faults = [f for f in options.faults if f != "throttle"]
        due = {fault: 0.3 + 0.15 * i for i, fault in enumerate(faults)}
        started = time.monotonic()
        deadline = started + options.timeout
        next_print, next_check = 0.0, 0.0
        try:
            while True:
                now = time.monotonic()
                stats = _stats(producer)
                total = self._consumed()
                for fault, at in list(due.items()):
                    if total >= at * options.messages:  # mid-consumption, past checkpoints
                        del due[fault]
                        self._inject(fault)
                if options.progress is not None and now >= next_print:
                    self._print_progress(options.progress, stats, total, now - started)
                    next_print = now + 2.0
                # Status lines lag behind the results files (a stopped consumer's last flush has
                # no status line), so completion is judged on the files, at most every second.
                if stats.done and now >= next_check:
                    next_check = now + 1.0
                    if self._unique_consumed() >= options.messages:
                        report.end_to_end_seconds = now - started
                        break
                if now > deadline:
                    report.error = f"timed out after {options.timeout:.0f} s"
                    break
                time.sleep(0.2)
        finally:
            stats = _stats(producer)
            producer.stop()
            report.sent, report.confirmed = stats.sent, stats.confirmed
            report.failed, report.unconfirmed = stats.failed, stats.unconfirmed
            report.producer_seconds = stats.elapsed

    @staticmethod
    def _print_progress(out: IO[str], stats: ProducerStats, total: int, elapsed: float) -> None:
        rate = total / elapsed if elapsed > 0 else 0.0
        backlog = max(stats.confirmed - total, 0)
        out.write(
            f"sent {stats.sent:>8}  confirmed {stats.confirmed:>8}  failed {stats.failed}  "
            f"consumed {total:>8}  {rate:>8.0f} rec/s  backlog {backlog:>7}\n"
        )
        out.flush()

    def _inject(self, fault: str) -> None:
        if fault == "reshard":
            _split_shard(self.kinesis, self.stream)
            time.sleep(2)
            _merge_shards(self.kinesis, self.stream)
            return
        victim = self.consumers[0] if fault == "sigkill" else self.consumers[-1]
        log.info("chaos: stopping a consumer", fault=fault, index=victim.index)
        if fault == "sigkill":
            victim.kill()
        else:
            victim.terminate(60)
        self.consumers.remove(victim)
        self.stopped.append(victim)  # its results count for the verdict
        self.consumers.append(self._consumer())


def _stats(producer: pykka.ActorRef[Any]) -> ProducerStats:
    from kinesis_actors.reliability._producer import GetProducerStats

    stats: ProducerStats = producer.ask(GetProducerStats(), block=True)
    return stats


# -- command line ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="mode", metavar="MODE", required=True)
    run = modes.add_parser(
        "run", help="create a stream, run producer and consumers, judge, clean up"
    )
    run.add_argument("--messages", type=int, default=20000, help="integers to send (default 20000)")
    run.add_argument("--shards", type=int, default=2, help="shards of the test stream (default 2)")
    run.add_argument("--consumers", type=int, default=2, help="consumer processes (default 2)")
    run.add_argument("--local", action="store_true", help="start kinesalite + dynalite on loopback")
    run.add_argument("--config", default=None, help="HOCON file merged over the sample config")
    run.add_argument(
        "--chaos", default="", help=f"comma-separated faults: {', '.join(FAULTS)}, or all"
    )
    run.add_argument(
        "--rate", type=int, default=2000, help="records/s the producer sends (default 2000)"
    )
    run.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    run.add_argument(
        "--keep-dir", type=Path, default=None, help="keep consumer logs and results files here"
    )
    consumer = modes.add_parser("consumer", help="run one SimpleKinesisConsumer until SIGTERM")
    consumer.add_argument("--config", default=None, help="HOCON file merged over the sample config")
    consumer.add_argument("--results", default=None, help="write consumed integers here (run mode)")
    consumer.add_argument("--messages", type=int, default=None, help="expected integers")
    producer = modes.add_parser("producer", help="run the SimpleKinesisProducer to the end")
    producer.add_argument("--config", default=None, help="HOCON file merged over the sample config")
    producer.add_argument("--messages", type=int, default=None, help="integers to send")


def _parse_faults(text: str) -> tuple[str, ...]:
    faults = (
        tuple(FAULTS)
        if text.strip() == "all"
        else tuple(f.strip() for f in text.split(",") if f.strip())
    )
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise KinesisActorsError(
            f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}"
        )
    return faults


def run_producer_process(args: argparse.Namespace) -> int:
    from kinesis_actors.reliability._producer import SimpleKinesisProducer, Start

    config = load_reliability_config(args.config)
    settings = ReliabilitySettings.from_config(config).with_overrides(
        expected_messages=args.messages
    )
    producer = SimpleKinesisProducer.start(config, settings=settings)
    try:
        producer.tell(Start())
        while not (stats := _stats(producer)).done:
            print(
                json.dumps(
                    {"sent": stats.sent, "confirmed": stats.confirmed, "failed": stats.failed}
                ),
                flush=True,
            )
            time.sleep(1)
        return 0 if stats.succeeded else 1
    finally:
        producer.stop()


def run_reliability(args: argparse.Namespace) -> int:
    if args.mode == "consumer":
        return run_consumer_process(args)
    if args.mode == "producer":
        return run_producer_process(args)
    options = RunOptions(
        messages=args.messages,
        shards=args.shards,
        consumers=args.consumers,
        faults=_parse_faults(args.chaos),
        local=args.local,
        config=args.config,
        timeout=args.timeout,
        rate=args.rate,
        progress=sys.stdout,
        keep_dir=args.keep_dir,
    )
    report = run_test(options)
    print(report.table())
    pykka.ActorRegistry.stop_all()
    return 0 if report.succeeded else 1
