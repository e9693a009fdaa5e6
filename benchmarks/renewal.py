"""CPU of one lease renewal: botocore's default client against the consumer's, and where it goes.

Run ``python benchmarks/renewal.py`` (dynalite on loopback). A consumer renews each lease it
holds every ``failoverTimeMillis`` / 3 (the KCL's interval) with one conditional UpdateItem, so
one holding 200 leases at the default 10 s makes 60 calls a second whatever it reads. This
measures the CPU time (user + system, of the calling thread) of ``--renewals`` renewals through
the lease table, round-robin over ``--leases`` leases, with:

* baseline: a DynamoDB client as botocore makes it (client-side parameter validation, a
  User-Agent rebuilt for every request);
* botocore, tuned: the consumer's DynamoDB client with its direct path off (as when a client
  hook is registered): no validation, a fixed User-Agent;
* library: the consumer's DynamoDB client as ``consumer_clients`` builds it, whose lease
  UpdateItems take the direct path (``kinesis_actors._aws.direct``: botocore's SigV4 signer,
  kept-alive ``http.client`` connections, JSON).

Rounds of ``--renewals`` / 5 alternate between the three; the figure is the median round. Then
one more run of the library's client under ``cProfile`` (timed by thread CPU) splits a renewal
into parts; the profiler's own overhead is spread over them, so the shares, not the
microseconds, are what to read there.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _shared import consumer_conf  # this folder: the script's own

from kinesis_actors._aws import (
    add_client_hook,
    client_config,
    consumer_clients,
    new_client,
    remove_client_hook,
)
from kinesis_actors._aws.direct import direct_path_of
from kinesis_actors._leases import DynamoDBLeaseTable
from kinesis_actors._leases.lease import Lease
from kinesis_actors._models import Sentinel
from kinesis_actors.testing import LocalKinesis

__all__ = ["main"]

#: Parts of a direct renewal, each the cumulative time of one function (none calls another).
_PARTS: tuple[tuple[str, str], ...] = (
    ("SigV4 signing (botocore)", "auth.py:add_auth"),
    ("credentials (get_frozen_credentials)", "credentials.py:get_frozen_credentials"),
    ("HTTP send (http.client)", "client.py:request"),
    ("HTTP receive and read (http.client)", "client.py:getresponse"),
    ("JSON encode", "__init__.py:dumps"),
    ("JSON decode", "__init__.py:loads"),
)


def _renewals(table: DynamoDBLeaseTable, leases: list[Lease]) -> Callable[[int], None]:
    def renew(count: int) -> None:
        for n in range(count):
            index = n % len(leases)
            renewed = table.renew(leases[index])
            assert renewed is not None, "a renewal lost its lease"
            leases[index] = renewed

    return renew


def _cpu_per_call(renewals: dict[str, Callable[[int], None]], count: int) -> dict[str, float]:
    """Median CPU seconds per renewal of each, over 5 alternating rounds of ``count`` / 5."""
    for renew in renewals.values():
        renew(50)  # connections and caches warm
    rounds: dict[str, list[float]] = {name: [] for name in renewals}
    size = max(count // 5, 1)
    for _ in range(5):
        for name, renew in renewals.items():
            started = time.thread_time()
            renew(size)
            rounds[name].append((time.thread_time() - started) / size)
    return {name: statistics.median(values) for name, values in rounds.items()}


def _parts(renew: Callable[[int], None], count: int) -> list[tuple[str, float]]:
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    renew(count)
    profile.disable()
    cumulative: dict[str, float] = {}
    for entry in profile.getstats():
        if not isinstance(entry.code, str):
            key = f"{Path(entry.code.co_filename).name}:{entry.code.co_name}"
            cumulative[key] = cumulative.get(key, 0.0) + entry.totaltime
    total = cumulative["table.py:renew"]
    rows = [(label, cumulative.get(key, 0.0) / total) for label, key in _PARTS]
    # The parts do not contain one another; what is left is the request object, headers and
    # the lease code itself.
    rest = max(0.0, 1.0 - sum(share for _, share in rows))
    return [*rows, ("the rest (request object, headers, lease code)", rest)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, default=200)
    parser.add_argument("--renewals", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=60.0, help="renewals/s to price")
    args = parser.parse_args(argv)
    with LocalKinesis(backend="emulators") as local:
        os.environ.update(local.environ())  # dummy credentials and region
        conf = consumer_conf("renewal-bench", f'dynamoDBEndpoint = "{local.dynamodb_endpoint}"')
        _, library = consumer_clients(conf.kcl)
        assert direct_path_of(library) is not None, "no direct path (moto imported? a proxy?)"
        add_client_hook(_no_hook)  # a registered hook turns the direct path off
        try:
            _, tuned = consumer_clients(conf.kcl)
        finally:
            remove_client_hook(_no_hook)
        baseline = new_client(
            "dynamodb", endpoint_url=local.dynamodb_endpoint, config=client_config(tries=3)
        )
        table = DynamoDBLeaseTable(library, conf.table_name)
        table.create_if_missing()
        leases = []
        for n in range(args.leases):
            lease = Lease(
                f"shardId-{n:012d}",
                "bench",
                1,
                Sentinel.LATEST,
                starting_hash_key=0,
                ending_hash_key=2**128 - 1,
            )
            table.create_lease(lease)
            leases.append(lease)
        clients = {"baseline": baseline, "tuned": tuned, "library": library}
        per_call = _cpu_per_call(
            {
                name: _renewals(DynamoDBLeaseTable(client, conf.table_name), leases)
                for name, client in clients.items()
            },
            args.renewals,
        )
        parts = _parts(_renewals(table, leases), args.renewals // 3)
    base, tuned_cpu, lib = per_call["baseline"], per_call["tuned"], per_call["library"]
    print(f"\nLease renewal (conditional UpdateItem, ALL_NEW) on dynalite, {args.leases} leases")
    print(f"  {'':<40} {'baseline':>9} {'botocore':>9} {'library':>9} {'library/baseline':>9}")
    print(f"  {'':<40} {'':>9} {'tuned':>9} {'(direct)':>9}")
    print(
        f"  {'CPU per renewal, us (median of 5)':<40} {base * 1e6:9.0f} {tuned_cpu * 1e6:9.0f}"
        f" {lib * 1e6:9.0f} {lib / base:8.2f}x"
    )
    share = f"CPU at {args.rate:g} renewals/s, % of a core"
    print(
        f"  {share:<40} {base * args.rate * 100:9.1f} {tuned_cpu * args.rate * 100:9.1f}"
        f" {lib * args.rate * 100:9.1f}"
    )
    print("\n  Where the library's (direct) renewal goes (cProfile by thread CPU; shares)")
    for label, fraction in parts:
        print(f"  {label:<60} {fraction * 100:5.0f} %  ~{fraction * lib * 1e6:4.0f} us")
    return 0


def _no_hook(service: str, client: object) -> None:
    """A client hook that does nothing (its presence alone turns the direct path off)."""


if __name__ == "__main__":
    sys.exit(main())
