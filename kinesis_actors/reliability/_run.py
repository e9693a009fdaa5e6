"""``reliability run``: the reliability test end to end, optionally under faults.

It creates the stream, starts N consumer processes (each a SimpleKinesisConsumer writing what it
consumed to a results file before acknowledging), runs the SimpleKinesisProducer, injects the
chosen faults mid-run, stops the consumers gracefully, reads every results file and judges: any
lost integer, failed or unconfirmed send is failure; duplicates are reported. It deletes the
stream and the lease table it created (never one that existed before), on success, on failure
and when interrupted (:class:`~kinesis_actors._signals.StopRequested` unwinds through it).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from kinesis_actors._aws import client_config, error_code, new_client
from kinesis_actors._config import ConsumerConf, ProducerConf
from kinesis_actors._errors import KinesisActorsError
from kinesis_actors._leases.membership import membership_table_name
from kinesis_actors._logging import get_logger
from kinesis_actors.reliability._chaos import (
    THROTTLE_ENV,
    THROTTLE_RATES,
    ThrottleInjector,
    merge_shards,
    split_shard,
)
from kinesis_actors.reliability._outcome import RunReport
from kinesis_actors.reliability._processes import ConsumerProcess, producer_stats
from kinesis_actors.reliability._producer import SimpleKinesisProducer, Start
from kinesis_actors.reliability._results import judge, read_results, read_timeline
from kinesis_actors.reliability._settings import ReliabilitySettings, load_reliability_config
from kinesis_actors.reliability._timeline import Fault, timeline, write_report

if TYPE_CHECKING:
    from pyhocon import ConfigTree

    from kinesis_actors.reliability._producer import ProducerStats

__all__ = ["RunOptions", "check_config", "derived_timeout", "run_test"]

log = get_logger(__name__)

#: ``derived_timeout``: seconds for start-up and draining, and per injected fault.
_TIMEOUT_MARGIN: Final = 60.0
_TIMEOUT_PER_FAULT: Final = 60.0
#: How many times longer than sending at ``rate`` the run may take to consume everything.
_TIMEOUT_RATE_FACTOR: Final = 3.0


def derived_timeout(messages: int, rate: int | None, faults: tuple[str, ...] = ()) -> float:
    """Seconds a run of ``messages`` at ``rate`` records/s may take before it gives up.

    Three times the sending time, plus a minute for start-up and draining and a minute per
    fault (a SIGKILLed consumer's leases are only taken over after they expire).
    """
    sending = messages / rate if rate else messages / 1000
    return _TIMEOUT_MARGIN + _TIMEOUT_RATE_FACTOR * sending + _TIMEOUT_PER_FAULT * len(faults)


@dataclass(frozen=True)
class RunOptions:
    messages: int
    shards: int = 2
    consumers: int = 2
    faults: tuple[str, ...] = ()
    local: bool = True
    config: str | os.PathLike[str] | None = None
    #: Seconds until the run gives up; None: :func:`derived_timeout`.
    timeout: float | None = None
    #: Records per second the producer sends (batches every ``batchDelayMillis``); None keeps
    #: ``kinesis.test.producer.batchSize``. Faults only prove something while records flow.
    rate: int | None = None
    progress: IO[str] | None = None
    #: Keep the consumer logs, results files and config here instead of a temporary folder
    #: deleted at the end (created if missing; use an empty one: results files are appended to).
    keep_dir: Path | None = None
    #: Also write the run over time here (``.html`` or ``.png``): see ``_timeline``.
    report_path: Path | None = None

    @property
    def effective_timeout(self) -> float:
        if self.timeout is not None:
            return self.timeout
        return derived_timeout(self.messages, self.rate, self.faults)


def check_config(source: str | os.PathLike[str] | None) -> ConfigTree:
    """Read and check the run's config (``source`` over the sample) before anything starts.

    Raises:
        ConfigError: the file is missing, does not parse, or a setting is invalid.
    """
    config = load_reliability_config(source)
    settings = ReliabilitySettings.from_config(config)
    ProducerConf.from_config(config, settings.producer_name)
    ConsumerConf.from_config(config, settings.consumer_name)
    return config


def _write_config(
    path: Path, base: str | os.PathLike[str] | None, stream: str, application: str
) -> None:
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
            if options.report_path is not None:
                run.write_timeline(options.report_path)
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
            self.env[THROTTLE_ENV] = ",".join(str(rate) for rate in THROTTLE_RATES)
        self.consumers: list[ConsumerProcess] = []
        self.stopped: list[ConsumerProcess] = []
        # What this run created, and so deletes at the end: never a resource that existed.
        self.stream_created = False
        self.tables = (
            self.consumer_conf.table_name,
            membership_table_name(self.consumer_conf.table_name),
        )
        self.tables_existing: set[str] | None = None
        self.started_at_ms = int(time.time() * 1000)
        self.faults_at: list[Fault] = []

    def execute(self) -> None:
        injector: ThrottleInjector | None = None
        try:
            self.tables_existing = {table for table in self.tables if self._table_exists(table)}
            self.kinesis.create_stream(StreamName=self.stream, ShardCount=self.options.shards)
            self.stream_created = True
            self.kinesis.get_waiter("stream_exists").wait(
                StreamName=self.stream, WaiterConfig={"Delay": 1}
            )
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

    def _table_exists(self, table: str) -> bool:
        try:
            self.dynamodb.describe_table(TableName=table)
        except Exception as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return False
            raise
        return True

    def _consumer(self) -> ConsumerProcess:
        index = len(self.consumers) + len(self.stopped)
        return ConsumerProcess(
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
        if self.stream_created:
            with contextlib.suppress(Exception):
                self.kinesis.delete_stream(StreamName=self.stream)
        if self.tables_existing is not None:
            for table in set(self.tables) - self.tables_existing:
                with contextlib.suppress(Exception):
                    self.dynamodb.delete_table(TableName=table)

    def write_timeline(self, path: Path) -> None:
        """The run over time, from every consumer's results file, with the faults marked."""
        everyone = self.consumers + self.stopped
        entries = [entry for c in everyone for entry in read_timeline(c.results)]
        faults = list(self.faults_at)
        if "throttle" in self.options.faults:
            faults.insert(0, Fault(self.started_at_ms, "throttle (whole run)"))
        write_report(path, timeline(entries, self.started_at_ms, faults), self.report.table())

    def _consumed(self) -> int:
        return sum(c.consumed for c in self.consumers + self.stopped)

    def _unique_consumed(self) -> int:
        everyone = self.consumers + self.stopped
        return len({value for c in everyone for value, _ in read_results(c.results) if value >= 0})

    def _produce_and_watch(self) -> None:
        options, report = self.options, self.report
        producer = SimpleKinesisProducer.start(self.config, settings=self.settings)
        producer.tell(Start())
        faults = [f for f in options.faults if f != "throttle"]
        due = {fault: 0.3 + 0.15 * i for i, fault in enumerate(faults)}
        started = time.monotonic()
        timeout = options.effective_timeout
        deadline = started + timeout
        next_print, next_check = 0.0, 0.0
        try:
            while True:
                now = time.monotonic()
                stats = producer_stats(producer)
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
                    report.error = f"timed out after {timeout:.0f} s"
                    break
                time.sleep(0.2)
        finally:
            stats = producer_stats(producer)
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
        self.faults_at.append(Fault(int(time.time() * 1000), fault))
        if fault == "reshard":
            split_shard(self.kinesis, self.stream)
            time.sleep(2)
            merge_shards(self.kinesis, self.stream)
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
