#!/usr/bin/env python3
"""--max-memory: broker RSS while messages wait for an absent client, and how
fast the client drains them when it returns (bench/RESULTS.md, Durability
(d)). For each budget (0 = none, 1M), three runs: a fresh broker with a data
directory, one persistent QoS 1 subscriber that goes away, --count messages
of 2 KB published to it, the RSS growth read from /proc, then the subscriber
back and the time until it has read (and acknowledged) every message.

  SHARDMQ_BIN=build/tools/shardmq python3 bench/max_memory_probe.py [--count 30000]

Uses the integration tests' raw client and broker runner (tests/integration).
"""
import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests" / "integration"))
import conftest  # noqa: E402
import mqtt_raw as raw  # noqa: E402
import test_max_memory as t  # noqa: E402
from test_durable_sessions import free_port  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=30_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for budget in ("0", "1M"):
        drains, growth = [], []
        for _ in range(args.runs):
            http = f"127.0.0.1:{free_port()}"
            with tempfile.TemporaryDirectory() as data:
                broker = conftest.RunningBroker(
                    f"--data-dir={data}", f"--max-memory={budget}", f"--http-listen={http}",
                    "--max-queued-messages=1000000", "--max-queued-bytes=100000000000")
                t.absent_subscriber(broker.port)
                before = t.rss_kib(broker.process.pid)
                t.publish_many(broker.port, 0, args.count)
                growth.append((t.rss_kib(broker.process.pid) - before) / 1024)
                client = raw.Client(broker.port)
                client.connect("absent", clean=False)
                began = time.monotonic()
                got = raw.read_publishes(client, args.count, timeout=300)
                drains.append(time.monotonic() - began)
                assert len(got) == args.count
                client.close()
                broker.stop()
        median = statistics.median(drains)
        print(f"budget {budget}: RSS growth MB {[round(g, 1) for g in growth]}; drain "
              f"{args.count} x 2 KB median {median:.2f} s ({args.count / median:,.0f} msg/s), "
              f"runs {[round(d, 2) for d in drains]}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("SHARDMQ_BIN", "build/tools/shardmq")
    main()
