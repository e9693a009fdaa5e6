"""What every DynamoDB table of the lease coordinator shares: error translation and creation.

The lease table and the fleet's membership table are both tables with one string hash key,
created on demand with the configured billing mode and used through one boto3 client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import botocore.exceptions

from kinesis_actors._aws import describe_aws_error, error_code, is_throttling
from kinesis_actors._errors import (
    DependencyError,
    InvalidStateError,
    LeaseTableMissingError,
    ThrottlingError,
)
from kinesis_actors._leases.tables import CreateOptions, Table
from kinesis_actors._logging import get_logger

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

__all__ = ["CONDITION_FAILED", "DynamoDBTable"]

log = get_logger(__name__)

_T = TypeVar("_T")

CONDITION_FAILED = "ConditionalCheckFailedException"


class DynamoDBTable(Table):
    """A table with one string hash key: translated errors, conditional writes, creation.

    Errors: `ThrottlingError`, `LeaseTableMissingError` (table gone), `DependencyError`.
    """

    def __init__(self, dynamodb: DynamoDBClient, name: str, *, hash_key: str, kind: str) -> None:
        self._dynamodb = dynamodb
        self._name = name
        self._hash_key = hash_key
        self._kind = kind

    @property
    def name(self) -> str:
        return self._name

    @contextmanager
    def _errors(self, operation: str, expected: str = CONDITION_FAILED) -> Iterator[None]:
        """Translate boto3 errors to the library's; the ``expected`` error code passes through."""
        try:
            yield
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code == expected:
                raise
            message = f"{operation} on {self._kind} {self._name}: {describe_aws_error(exc)}"
            if is_throttling(exc):
                raise ThrottlingError(message) from exc
            if code == "ResourceNotFoundException":
                raise LeaseTableMissingError(self._name, operation) from exc
            raise DependencyError(message) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise DependencyError(f"{operation} on {self._kind} {self._name}: {exc}") from exc

    def _conditional(self, operation: str, call: Callable[[], _T]) -> _T | None:
        """Run a conditional write; None if its condition failed."""
        try:
            with self._errors(operation):
                return call()
        except botocore.exceptions.ClientError:
            return None  # only ConditionalCheckFailed gets through _errors

    def _status(self) -> str | None:
        try:
            with self._errors("DescribeTable"):
                return self._dynamodb.describe_table(TableName=self._name)["Table"]["TableStatus"]
        except LeaseTableMissingError:
            return None

    def _create_if_missing(self, options: CreateOptions) -> bool:
        """The options apply to a table created here only; an existing table is never changed."""
        created = False
        if self._status() is None:
            if options.must_exist:
                raise LeaseTableMissingError(self._name, "leaseTableMustExist: not created")
            try:
                with self._errors("CreateTable", expected="ResourceInUseException"):
                    self._dynamodb.create_table(**self._create_request(options))
                created = True
                log.info(
                    f"{self._kind} created", table=self._name, billing_mode=options.billing_mode
                )
            except botocore.exceptions.ClientError:
                pass  # another worker created it first
        deadline = time.monotonic() + options.timeout
        while (status := self._status()) != "ACTIVE":
            if time.monotonic() > deadline:
                raise InvalidStateError(
                    f"{self._kind} {self._name} not active after {options.timeout:g} s"
                    f" (status {status})"
                )
            time.sleep(0.2)
        if created and options.point_in_time_recovery:
            with self._errors("UpdateContinuousBackups"):
                self._dynamodb.update_continuous_backups(
                    TableName=self._name,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
        return created

    def _create_request(self, options: CreateOptions) -> dict[str, Any]:
        request: dict[str, Any] = {
            "TableName": self._name,
            "KeySchema": [{"AttributeName": self._hash_key, "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": self._hash_key, "AttributeType": "S"}],
            "BillingMode": options.billing_mode,
        }
        if options.billing_mode == "PROVISIONED":
            if options.read_capacity is None or options.write_capacity is None:
                raise ValueError("PROVISIONED needs a read and a write capacity")
            request["ProvisionedThroughput"] = {
                "ReadCapacityUnits": options.read_capacity,
                "WriteCapacityUnits": options.write_capacity,
            }
        if options.tags:
            request["Tags"] = [{"Key": key, "Value": value} for key, value in options.tags]
        if options.deletion_protection:
            request["DeletionProtectionEnabled"] = True
        return request

    def billing(self) -> tuple[str, int | None, int | None]:
        """(billing mode, read capacity, write capacity) of the table as it is now."""
        with self._errors("DescribeTable"):
            table = self._dynamodb.describe_table(TableName=self._name)["Table"]
        # A table created before on-demand existed has no BillingModeSummary: PROVISIONED.
        mode = table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
        if mode != "PROVISIONED":
            return mode, None, None
        throughput = table.get("ProvisionedThroughput", {})
        return mode, throughput.get("ReadCapacityUnits"), throughput.get("WriteCapacityUnits")

    def delete_table(self) -> None:
        with self._errors("DeleteTable"):
            self._dynamodb.delete_table(TableName=self._name)
