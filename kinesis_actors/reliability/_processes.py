"""The reliability test's processes: one consumer, one producer, and the run's consumer handle.

``reliability run`` starts its consumers as ``python -m kinesis_actors.reliability consumer``
(this package's own entry point) and reads their JSON status lines; an operator runs the same
consumer alone with ``kinesis-actors reliability consumer``: it consumes until SIGINT, SIGTERM
or SIGHUP and then prints a summary for a person.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from kinesis_actors._signals import StopSignals
from kinesis_actors.reliability._chaos import injector_from_env
from kinesis_actors.reliability._consumer import ConsumerState, GetState, SimpleKinesisConsumer
from kinesis_actors.reliability._producer import GetProducerStats, SimpleKinesisProducer, Start
from kinesis_actors.reliability._settings import ReliabilitySettings, load_reliability_config

if TYPE_CHECKING:
    import pykka

    from kinesis_actors.reliability._producer import ProducerStats

__all__ = ["ConsumerProcess", "producer_stats", "run_consumer", "run_producer"]

_STATUS_INTERVAL: Final = 0.5
_PROGRESS_INTERVAL: Final = 1.0
#: Exit code of a consumer that died or whose verdict failed (the Scala original's too).
CONSUMER_FAILED: Final = 3


def run_consumer(
    config: str | os.PathLike[str] | None,
    *,
    messages: int | None = None,
    results: Path | None = None,
    status_lines: bool = False,
    out: IO[str] | None = None,
) -> int:
    """Consume until a stop signal (or the consumer dies); the exit code.

    With ``status_lines`` (the run's consumer processes) a JSON status line is printed every
    half second; otherwise a summary for a person at the end. With ``results`` every integer
    is written there before it is acknowledged, and no pit stops are made.
    """
    out = out or sys.stdout
    reliability_config = load_reliability_config(config)
    settings = ReliabilitySettings.from_config(reliability_config).with_overrides(
        expected_messages=messages, pitstop_count=0 if results is not None else None
    )
    injector = injector_from_env()
    code = 0
    with StopSignals() as stop:
        consumer = SimpleKinesisConsumer.start(
            reliability_config, settings=settings, results_path=results
        )
        try:
            while not stop.wait(_STATUS_INTERVAL):
                state: ConsumerState = consumer.ask(GetState(), block=True)
                if status_lines:
                    status: dict[str, Any] = {
                        "consumed": state.consumed,
                        "duplicates": state.duplicates,
                    }
                    if injector is not None:
                        status["injected"] = injector.injected
                    print(json.dumps(status), file=out, flush=True)
                if not state.consumer_running:
                    code = CONSUMER_FAILED
                    break
            state = consumer.ask(GetState(), block=True)
        finally:
            consumer.stop()
            if injector is not None:
                injector.uninstall()
    if state.succeeded is False:
        code = CONSUMER_FAILED
    if not status_lines:
        print(_summary(state, code), file=out, flush=True)
    return code


def _summary(state: ConsumerState, code: int) -> str:
    if state.succeeded is None:
        verdict = "no verdict (the end marker did not arrive)"
    else:
        verdict = "SUCCEEDED" if state.succeeded else "FAILED"
    if code == CONSUMER_FAILED and not state.consumer_running:
        verdict += "; the consumer stopped on an error (see the log)"
    return (
        f"consumed {state.consumed} records ({state.duplicates} duplicates), "
        f"{state.verified} verified; verdict: {verdict}"
    )


def producer_stats(producer: pykka.ActorRef[Any]) -> ProducerStats:
    stats: ProducerStats = producer.ask(GetProducerStats(), block=True)
    return stats


def run_producer(
    config: str | os.PathLike[str] | None,
    *,
    messages: int | None = None,
    out: IO[str] | None = None,
) -> int:
    """Send every integer and the end marker, printing progress; 0 if all were confirmed.

    A stop signal stops the producer early (exit code 1: not everything was sent).
    """
    out = out or sys.stdout
    reliability_config = load_reliability_config(config)
    settings = ReliabilitySettings.from_config(reliability_config).with_overrides(
        expected_messages=messages
    )
    with StopSignals() as stop:
        producer = SimpleKinesisProducer.start(reliability_config, settings=settings)
        try:
            producer.tell(Start())
            while not (stats := producer_stats(producer)).done and not stop.is_set():
                print(
                    f"sent {stats.sent}  confirmed {stats.confirmed}  failed {stats.failed}",
                    file=out,
                    flush=True,
                )
                stop.wait(_PROGRESS_INTERVAL)
            stats = producer_stats(producer)
        finally:
            producer.stop()
    print(
        f"sent {stats.sent} of {stats.expected}: {stats.confirmed} confirmed, {stats.failed} "
        f"failed, {stats.unconfirmed} unconfirmed in {stats.elapsed:.1f} s",
        file=out,
        flush=True,
    )
    return 0 if stats.succeeded else 1


class ConsumerProcess:
    """A consumer subprocess of the run, and the status it prints."""

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
            sys.executable, "-m", "kinesis_actors.reliability", "consumer",
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
