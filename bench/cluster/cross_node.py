#!/usr/bin/python3
"""Cross-node throughput through RabbitMQ (README "Cluster"), measured end to
end with raw MQTT 3.1.1 sockets so the client is not the bottleneck.

Starts its own rabbitmq-server (as tests/integration/test_cluster.py does)
and two shardmq nodes, then for each case publishes COUNT QoS 0 messages as
fast as TCP takes them on one node and counts them at a subscriber on the
other node (or the same node, for the baseline). Prints messages/s from the
first byte sent to the last message received. Then it runs shardmq-bench's
fanout (1 -> 10) and p2p (20 pairs; as fast as they go, and at 10,000
msgs/s in all) scenarios, QoS 0 and 1, with the
publishers on one node and the subscribers on the other (--sub-port), and on
one node for comparison: delivered messages/s, latency, and lost /
duplicated / reordered counts.

    SHARDMQ_BIN=build/tools/shardmq /usr/bin/python3 bench/cluster/cross_node.py [COUNT]
"""
import json
import subprocess
import os
import pathlib
import socket
import struct
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
from conftest import RunningBroker, wait_until  # noqa: E402
from mqtt_raw import utf8, varint  # noqa: E402
from test_cluster import Rabbit, connected_count  # noqa: E402


def packet(kind, body):
    """`kind`: the whole first byte (type and flags)."""
    return bytes([kind]) + varint(len(body)) + body


def connect(port, client_id):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    body = utf8("MQTT") + bytes([4, 2]) + struct.pack(">H", 0) + utf8(client_id)
    s.sendall(packet(0x10, body))
    assert s.recv(4)[0] == 0x20
    return s


def subscribe(s, topic):
    s.sendall(packet(0x82, struct.pack(">H", 1) + utf8(topic) + bytes([0])))
    assert s.recv(5)[0] == 0x90


def run_case(pub_port, sub_port, count, payload=64, settle=1.0):
    topic = f"bench/{pub_port}/{sub_port}/{time.monotonic_ns()}"
    sub = connect(sub_port, f"sub-{time.monotonic_ns()}")
    subscribe(sub, topic)
    time.sleep(settle)  # the binding reaches RabbitMQ
    one = packet(0x30, utf8(topic) + b"x" * payload)
    received = [0]
    done = threading.Event()

    def read():
        got = 0
        need = count * len(one)
        while got < need:
            chunk = sub.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        received[0] = got // len(one)
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    pub = connect(pub_port, f"pub-{time.monotonic_ns()}")
    batch = one * 1000
    start = time.monotonic()
    for _ in range(count // 1000):
        pub.sendall(batch)
    done.wait(120)
    elapsed = time.monotonic() - start
    pub.close()
    sub.close()
    return received[0], elapsed


def latency(pub_port, sub_port, rounds=200, payload=64):
    """Median and 99th percentile of one message's trip, one at a time."""
    topic = f"lat/{time.monotonic_ns()}"
    sub = connect(sub_port, f"lsub-{time.monotonic_ns()}")
    subscribe(sub, topic)
    time.sleep(1.0)
    pub = connect(pub_port, f"lpub-{time.monotonic_ns()}")
    one = packet(0x30, utf8(topic) + b"x" * payload)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        pub.sendall(one)
        got = 0
        while got < len(one):
            got += len(sub.recv(len(one) - got))
        samples.append(time.perf_counter() - start)
    pub.close()
    sub.close()
    samples.sort()
    return samples[len(samples) // 2] * 1e3, samples[int(len(samples) * 0.99)] * 1e3


BENCH = pathlib.Path(os.environ.get("SHARDMQ_BENCH",
                                    ROOT / "build" / "tools" / "bench" / "shardmq-bench"))
SCENARIOS = (
    ("fanout 1->10", ["--scenario=fanout", "--publishers=1", "--subscribers=10"]),
    ("p2p 20 pairs", ["--scenario=p2p", "--pairs=20"]),
    # Open loop below saturation: the latency of one crossing, not of a queue.
    ("p2p 20 @ 10k/s", ["--scenario=p2p", "--pairs=20", "--rate=500"]),
)


def bench_case(pub_port, sub_port, args, qos, seconds=5):
    """One shardmq-bench run; its JSON report."""
    command = [str(BENCH), f"--port={pub_port}", f"--sub-port={sub_port}", f"--qos={qos}",
               "--settle=1s", f"--duration={seconds}s", "--warmup=1s", "--json", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_table(a, b):
    print(f"{'scenario':14s} {'QoS':>3s} {'where':>10s} {'delivered/s':>12s} "
          f"{'p50 ms':>8s} {'p99 ms':>8s} {'lost':>5s} {'dup':>5s} {'reord':>5s}", flush=True)
    for label, args in SCENARIOS:
        for qos in (0, 1):
            for where, pub, sub in (("same node", a, a), ("cross node", a, b)):
                r = bench_case(pub.port, sub.port, args, qos)
                lat = r["latency_us"]
                print(f"{label:14s} {qos:3d} {where:>10s} {r['delivered_rate']:12,.0f} "
                      f"{lat['p50'] / 1e3:8.2f} {lat['p99'] / 1e3:8.2f} {r['lost']:5d} "
                      f"{r['duplicated']:5d} {r['reordered']:5d}"
                      + (f"  ({r['error'] or r['integrity_failure']})"
                         if r.get("error") or r.get("integrity_failure") else ""), flush=True)


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100000
    base = tempfile.mkdtemp(prefix="shardmq-bench-rabbit-")
    rabbit = Rabbit(base)
    nodes = []
    try:
        rabbit.start()
        for name in ("a", "b"):
            nodes.append(RunningBroker(f"--cluster-amqp={rabbit.url}", f"--node-id=bench-{name}",
                                       f"--cluster-buffer={count * 2}", shards=1))
        for node in nodes:
            assert wait_until(lambda: connected_count(node) >= 1, timeout=20)
        a, b = nodes
        for label, pub, sub in (("same node (cluster on)", a, a), ("cross node", a, b)):
            got, elapsed = run_case(pub.port, sub.port, count)
            print(f"{label:24s} QoS 0, 64 B: {got}/{count} received in {elapsed:.2f} s = "
                  f"{got / elapsed:,.0f} msg/s", flush=True)
        for label, pub, sub in (("same node (cluster on)", a, a), ("cross node", a, b)):
            p50, p99 = latency(pub.port, sub.port)
            print(f"{label:24s} QoS 0 one at a time: p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                  flush=True)
        if BENCH.exists():
            bench_table(a, b)
    finally:
        for node in nodes:
            node.stop()
            for line in node.log_lines:
                if "cluster: stopped" in line:
                    print(line)
        rabbit.close()


if __name__ == "__main__":
    main()
