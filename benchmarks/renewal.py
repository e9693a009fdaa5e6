"""CPU of one lease renewal: botocore's default client against the consumer's, and where it goes.

Run ``python benchmarks/renewal.py`` (dynalite on loopback). A consumer renews each lease it
holds every ``failoverTimeMillis`` / 3 (the KCL's interval) with one conditional UpdateItem, so
one holding 200 leases at the default 10 s makes 60 calls a second whatever it reads. This
measures the CPU time (user + system, of the calling thread) of ``--renewals`` renewals through
the lease table, round-robin over ``--leases`` leases, with:

* baseline: a DynamoDB client as botocore makes it (client-side parameter validation, a
  User-Agent rebuilt for every request);
* library: the consumer's own DynamoDB client (``consumer_clients``).

Then one more run of the library's client under ``cProfile`` (timed by thread CPU) splits a
renewal into parts; the profiler's own overhead is spread over them, so the shares, not the
microseconds, are what to read there.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _shared import consumer_conf  # this folder: the script's own

from kinesis_actors._aws import client_config, consumer_clients, new_client
from kinesis_actors._leases import DynamoDBLeaseTable
from kinesis_actors._leases.lease import Lease
from kinesis_actors._models import Sentinel
from kinesis_actors.testing import LocalKinesis

__all__ = ["main"]

#: Parts of a renewal, each the cumulative time of one botocore function (none calls another).
_PARTS: tuple[tuple[str, str], ...] = (
    ("SigV4 signing", "auth.py:add_auth"),
    ("endpoint rules", "client.py:_resolve_endpoint_ruleset"),
    ("request serialisation", "client.py:_convert_to_request_dict"),
    ("HTTP send + receive (urllib3, http.client)", "httpsession.py:send"),
    ("response parsing", "parsers.py:parse"),
)


def _renewals(table: DynamoDBLeaseTable, leases: list[Lease]) -> Callable[[int], None]:
    def renew(count: int) -> None:
        for n in range(count):
            index = n % len(leases)
            renewed = table.renew(leases[index])
            assert renewed is not None, "a renewal lost its lease"
            leases[index] = renewed

    return renew


def _cpu_per_call(renew: Callable[[int], None], count: int) -> float:
    renew(min(count, 50))  # connections and caches warm
    started = time.thread_time()
    renew(count)
    return (time.thread_time() - started) / count


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
    # The parts do not contain one another; what is left is botocore's event hooks, request
    # objects and retry checks, and the lease code itself.
    rest = max(0.0, 1.0 - sum(share for _, share in rows))
    return [*rows, ("the rest (hooks, request objects, retry checks, lease code)", rest)]


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
        per_call = {}
        for name, client in (("baseline", baseline), ("library", library)):
            renew = _renewals(DynamoDBLeaseTable(client, conf.table_name), leases)
            per_call[name] = _cpu_per_call(renew, args.renewals)
        parts = _parts(_renewals(table, leases), args.renewals // 3)
    base, lib = per_call["baseline"], per_call["library"]
    print(f"\nLease renewal (conditional UpdateItem, ALL_NEW) on dynalite, {args.leases} leases")
    print(f"  {'':<44} {'baseline':>10} {'library':>10} {'library/baseline':>9}")
    print(f"  {'CPU per renewal, us':<44} {base * 1e6:10.0f} {lib * 1e6:10.0f} {lib / base:8.2f}x")
    share = f"CPU at {args.rate:g} renewals/s, % of one core"
    print(f"  {share:<44} {base * args.rate * 100:10.1f} {lib * args.rate * 100:10.1f}")
    print("\n  Where the library's renewal goes (cProfile by thread CPU; shares)")
    for label, fraction in parts:
        print(f"  {label:<60} {fraction * 100:5.0f} %  ~{fraction * lib * 1e6:4.0f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
