"""Lease table options: billing inferred from capacities, tags, PITR, deletion protection,
and leaseTableMustExist; visible through DescribeTable and friends on moto, in-process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from structlog.testing import capture_logs

from kinesis_actors._cli.leases import format_billing
from kinesis_actors._config import ConsumerConf, load_config
from kinesis_actors._errors import ConfigError, LeaseTableMissingError
from kinesis_actors._leases.dynamodb_leases import DynamoDBLeaseTable


def lease_table(kcl: str) -> Any:
    return ConsumerConf.from_config(
        load_config(f"kinesis.c {{ stream-name = s, kcl {{ {kcl} }} }}"), "c"
    ).kcl.lease_table


def test_billing_is_on_demand_by_default_and_inferred_from_capacities() -> None:
    assert lease_table("").billing_mode == "PAY_PER_REQUEST"
    with capture_logs() as logs:
        inferred = lease_table(
            "initialLeaseTableReadCapacity = 5, initialLeaseTableWriteCapacity = 7"
        )
    assert (inferred.billing_mode, inferred.read_capacity, inferred.write_capacity) == (
        "PROVISIONED",
        5,
        7,
    )
    warnings = [e for e in logs if e["event"].startswith("lease table billing mode inferred")]
    assert warnings and "kinesis.c.kcl.initialLeaseTableReadCapacity" in warnings[0]["keys"]


@pytest.mark.parametrize(
    ("kcl", "path"),
    [
        (
            "leaseTableBillingMode = PAY_PER_REQUEST, initialLeaseTableWriteCapacity = 5",
            "kinesis.c.kcl.initialLeaseTableWriteCapacity",
        ),
        ("leaseTableBillingMode = PROVISIONED", "kinesis.c.kcl.initialLeaseTableReadCapacity"),
        ("initialLeaseTableReadCapacity = 5", "kinesis.c.kcl.initialLeaseTableWriteCapacity"),
        ("leaseTableTags = [a, b]", "kinesis.c.kcl.leaseTableTags"),
    ],
)
def test_lease_table_settings_that_cannot_be_honoured_fail_at_load(kcl: str, path: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(f"kinesis.c {{ stream-name = s, kcl {{ {kcl} }} }}")
    assert error.value.path == path


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):  # moto, not a local server
        monkeypatch.delenv(name, raising=False)
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


def test_options_are_visible_on_the_created_table(dynamodb: Any) -> None:
    options = lease_table(
        "initialLeaseTableReadCapacity = 4, initialLeaseTableWriteCapacity = 6, "
        'leaseTableTags { team = orders, "cost-center" = "42" }, leaseTablePitrEnabled = true, '
        "leaseTableDeletionProtectionEnabled = true"
    )
    table = DynamoDBLeaseTable(dynamodb, "app-orders")
    assert table.create_if_missing(**options.create_options())
    described = dynamodb.describe_table(TableName="app-orders")["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert described["ProvisionedThroughput"]["ReadCapacityUnits"] == 4
    assert described["ProvisionedThroughput"]["WriteCapacityUnits"] == 6
    assert described["DeletionProtectionEnabled"] is True
    tags = dynamodb.list_tags_of_resource(ResourceArn=described["TableArn"])["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "orders", "cost-center": "42"}
    backups = dynamodb.describe_continuous_backups(TableName="app-orders")
    pitr = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    assert format_billing("app-orders", *table.billing()) == (
        "lease table app-orders: PROVISIONED, 4 read / 6 write capacity units"
    )


def test_defaults_create_an_on_demand_table_without_extras(dynamodb: Any) -> None:
    table = DynamoDBLeaseTable(dynamodb, "app-plain")
    assert table.create_if_missing(**lease_table("").create_options())
    described = dynamodb.describe_table(TableName="app-plain")["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert not described.get("DeletionProtectionEnabled", False)
    assert dynamodb.list_tags_of_resource(ResourceArn=described["TableArn"]).get("Tags", []) == []
    assert format_billing("app-plain", *table.billing()) == "lease table app-plain: PAY_PER_REQUEST"


def test_must_exist_fails_fast_naming_the_table(dynamodb: Any) -> None:
    table = DynamoDBLeaseTable(dynamodb, "app-missing")
    with pytest.raises(LeaseTableMissingError, match="app-missing") as error:
        table.create_if_missing(**lease_table("leaseTableMustExist = true").create_options())
    assert error.value.table == "app-missing"
    assert dynamodb.list_tables()["TableNames"] == []
    DynamoDBLeaseTable(dynamodb, "app-missing").create_if_missing()
    assert not table.create_if_missing(**lease_table("leaseTableMustExist = true").create_options())
