"""The KPL's retrier: a PutRecords outcome judged record by record (finish, retry or fail).

Single-threaded state like the pipeline that owns it: the engine thread hands each outcome in
with times of the caller's clock; the records to retry go back to the pipeline, which routes
them again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kinesis_actors._aws import error_code as aws_error_code
from kinesis_actors._aws import error_message, is_fatal_put_error
from kinesis_actors._errors import UserRecordFailedError
from kinesis_actors._log_summary import LogSummary
from kinesis_actors._models import Attempt, UserRecordResult
from kinesis_actors._producer.futures import finish_all
from kinesis_actors._producer.shard_map import shard_number

if TYPE_CHECKING:
    from mypy_boto3_kinesis.type_defs import PutRecordsOutputTypeDef
    from structlog.stdlib import BoundLogger

    from kinesis_actors._config import KplConf
    from kinesis_actors._producer.pipeline import PipelineStats
    from kinesis_actors._producer.records import KinesisRecord, UserRecord
    from kinesis_actors._producer.shard_map import ShardMap

__all__ = ["COUNT_MISMATCH", "EXPIRED", "THROTTLED", "WRONG_SHARD", "Retrier", "error_code"]

#: Error codes in attempts: Kinesis's throttle, and the KPL's own codes.
THROTTLED = "ProvisionedThroughputExceededException"
EXPIRED = "Expired"
WRONG_SHARD = "Wrong Shard"
COUNT_MISMATCH = "Record Count Mismatch"


def error_code(error: BaseException) -> tuple[str, str]:
    """(code, message) of a failed call: the service error code, else the exception's name."""
    return aws_error_code(error) or type(error).__name__, error_message(error)


class Retrier:
    """Judges the PutRecords outcomes of one stream's pipeline, counting into its stats."""

    def __init__(
        self, kpl: KplConf, shard_map: ShardMap, stats: PipelineStats, log: BoundLogger
    ) -> None:
        self._shard_map = shard_map
        self._stats = stats
        self._log = log
        # Failing calls and entries: one line per error code per interval, not one per call.
        self._failures = LogSummary(log, kpl.log_summary_interval)
        self._fail_if_throttled = kpl.fail_if_throttled
        self._retry_delay = kpl.record_max_buffered_time / 2

    def judge(
        self,
        records: list[KinesisRecord],
        response: PutRecordsOutputTypeDef | None,
        error: BaseException | None,
        start: float,
        end: float,
        now: float,
    ) -> list[UserRecord]:
        """Finish or fail each user record of one PutRecords call; the ones to retry."""
        retries: list[UserRecord] = []
        if response is None:
            code, message = error_code(error) if error is not None else ("Unknown", "no response")
            self._stats.put_records_call_errors += 1
            self._failures.warning(
                ("call", code),
                "PutRecords call failed",
                now,
                error_code=code,
                error_message=message,
                kinesis_records=len(records),
                fatal=is_fatal_put_error(code),
            )
            for record in records:
                self._retry_or_fail(record, code, message, start, end, now, retries)
        else:
            results = response["Records"]
            if len(results) != len(records):
                message = (
                    f"PutRecords answered {len(results)} entries for {len(records)} records sent"
                )
                self._log.error("PutRecords response count mismatch", detail=message)
                for record in records:
                    for user_record in record.records:
                        self.fail(user_record, COUNT_MISMATCH, message, start, end)
            else:
                failed_codes: dict[str, int] = {}
                for record, result in zip(records, results, strict=True):
                    sequence_number = result.get("SequenceNumber")
                    if sequence_number:
                        shard_id = result["ShardId"]
                        self._succeed(record, shard_id, sequence_number, start, end, retries)
                    else:
                        code = result.get("ErrorCode") or "Unknown"
                        failed_codes[code] = failed_codes.get(code, 0) + 1
                        self._retry_or_fail(
                            record, code, result.get("ErrorMessage") or "", start, end, now, retries
                        )
                if failed_codes:
                    self._failures.info(
                        ("entries", *sorted(failed_codes)),
                        "PutRecords entries failed",
                        now,
                        error_codes=failed_codes,
                    )
        return retries

    def _succeed(
        self,
        record: KinesisRecord,
        shard_id: str,
        sequence_number: str,
        start: float,
        end: float,
        retries: list[UserRecord],
    ) -> None:
        stats = self._stats
        stats.kinesis_records_put += 1
        stats.kinesis_bytes_put += record.size
        predicted = record.shard_id
        members = record.records
        if predicted is not None and predicted != shard_id:
            members = self._check_wrong_shard(record, predicted, shard_id, start, retries)
        duration = end - start
        results = []
        for user_record in members:
            success = Attempt(start - user_record.mark, duration, None, None, True)
            attempts = user_record.attempts
            results.append(
                UserRecordResult(
                    shard_id,
                    sequence_number,
                    (success,) if attempts is None else (*attempts, success),
                    True,
                )
            )
        finish_all([user_record.future for user_record in members], results)
        stats.user_records_put += len(members)

    def _check_wrong_shard(
        self,
        record: KinesisRecord,
        predicted: str,
        shard_id: str,
        start: float,
        retries: list[UserRecord],
    ) -> list[UserRecord]:
        """The members that count as put on ``shard_id``; the others are retried.

        Kinesis routes a record by its explicit hash key, the first member's. If any member of an
        aggregate falls outside the actual shard's range, consumers drop the WHOLE aggregate (the
        KCL's resharding filter), so every member is sent again as "Wrong Shard" — the first one
        too, or it would be lost. With the actual shard's range unknown, members whose hash key
        differs from the first one's are assumed outside: a duplicate at worst, never a loss.
        """
        hash_range = self._shard_map.hash_range(shard_id, start)
        routed_by = record.records[0].hash_key
        misrouted = sum(
            1
            for user_record in record.records
            if user_record.hash_key != routed_by
            and (hash_range is None or not hash_range[0] <= user_record.hash_key <= hash_range[1])
        )
        stale = hash_range is None or shard_number(shard_id) > shard_number(predicted)
        if (misrouted or stale) and self._shard_map.invalidate(start, predicted):
            self._log.warning(
                "record landed off its predicted shard; refreshing the shard map",
                predicted_shard=predicted,
                actual_shard=shard_id,
                misrouted_records=misrouted,
            )
        if not misrouted:
            return record.records
        for user_record in record.records:
            self._add_attempt(
                user_record,
                WRONG_SHARD,
                f"aggregate predicted for {predicted} landed on {shard_id} with "
                f"{misrouted} member(s) outside its hash range",
                start,
                start,
            )
            retries.append(user_record)
        self._stats.wrong_shard_records += len(record.records)
        return []

    def _retry_or_fail(
        self,
        record: KinesisRecord,
        code: str,
        message: str,
        start: float,
        end: float,
        now: float,
        retries: list[UserRecord],
    ) -> None:
        throttled = code == THROTTLED
        if throttled:
            self._stats.throttled_records += 1
        # A code no retry can fix (missing stream, no permission, KMS key unusable) fails the
        # records at once, naming it, instead of retrying until RecordTtl says "Expired".
        fail_now = is_fatal_put_error(code) or (throttled and self._fail_if_throttled)
        for user_record in record.records:
            if fail_now:
                self.fail(user_record, code, message, start, end)
                continue
            self._add_attempt(user_record, code, message, start, end)
            if now > user_record.expiration:
                self.fail(user_record, EXPIRED, "Record has reached expiration", now, now)
            else:
                user_record.deadline = min(now + self._retry_delay, user_record.expiration)
                retries.append(user_record)

    @staticmethod
    def _add_attempt(record: UserRecord, code: str, message: str, start: float, end: float) -> None:
        attempt = Attempt(start - record.mark, end - start, code, message, False)
        record.mark = end
        if record.attempts is None:
            record.attempts = [attempt]
        else:
            record.attempts.append(attempt)

    def fail(self, record: UserRecord, code: str, message: str, start: float, end: float) -> None:
        """Finish a record as failed; its future raises ``UserRecordFailedError``."""
        self._add_attempt(record, code, message, start, end)
        result = UserRecordResult(None, None, tuple(record.attempts or ()), False)
        record.future.set_exception(UserRecordFailedError(result))
        self._stats.user_records_failed += 1
        if code == EXPIRED:
            self._stats.user_records_expired += 1

    def flush_logs(self) -> None:
        """Log the failure counts still held back by the per-interval summary."""
        self._failures.flush()
