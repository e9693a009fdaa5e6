"""The AWS boundary: boto3 clients, credentials, error codes, the throttling test, pagination.

One concept per module: :mod:`.clients` (the one client factory and client hooks),
:mod:`.credentials` (provider chains, assume-role), :mod:`.direct` (the lease table's direct
DynamoDB path), :mod:`.timestamps` (fast response timestamps), :mod:`.errors` (error codes,
throttling, fatal PutRecords errors, one-line descriptions), :mod:`.pagination` (ListShards)
and :mod:`.subscription` (SubscribeToShard). This package re-exports what the rest of the
library uses.
"""

from __future__ import annotations

from kinesis_actors._aws.clients import (
    add_client_hook,
    client_config,
    consumer_clients,
    consumer_producer_client,
    new_client,
    producer_client,
    remove_client_hook,
)
from kinesis_actors._aws.credentials import session_for
from kinesis_actors._aws.direct import direct_path_of
from kinesis_actors._aws.errors import (
    describe_aws_error,
    error_code,
    error_message,
    is_fatal_put_error,
    is_throttling,
    is_transport_error,
)
from kinesis_actors._aws.pagination import list_all_shards
from kinesis_actors._aws.subscription import Subscription, is_protocol_error, open_subscription

__all__ = [
    "Subscription",
    "add_client_hook",
    "client_config",
    "consumer_clients",
    "consumer_producer_client",
    "describe_aws_error",
    "direct_path_of",
    "error_code",
    "error_message",
    "is_fatal_put_error",
    "is_protocol_error",
    "is_throttling",
    "is_transport_error",
    "list_all_shards",
    "new_client",
    "open_subscription",
    "producer_client",
    "remove_client_hook",
    "session_for",
]
