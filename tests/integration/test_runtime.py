"""The shard runtime seen from outside: many connections over several shards,
more shards than cores, graceful shutdown, and refusal without io_uring."""
import asyncio
import os
import re
import resource
import signal
import subprocess
import time

import pytest

import mqtt_raw
from conftest import BINARY, ROOT, RunningBroker

CONNACK_OK = bytes([0x20, 0x02, 0x00, 0x00])
PINGRESP = bytes([0xD0, 0x00])


def shard_stats(log):
    """{shard: (accepted, connects)} from the shutdown lines."""
    stats = {}
    for match in re.finditer(r"shard (\d+): accepted (\d+) connections .*?, (\d+) CONNECTs", log):
        stats[int(match.group(1))] = (int(match.group(2)), int(match.group(3)))
    return stats


async def hold_connections(port, count, opening_at_once=256):
    """Opens `count` connections, CONNECTs all, pings all while all are open,
    then DISCONNECTs all. Returns how many got CONNACK and PINGRESP."""
    gate = asyncio.Semaphore(opening_at_once)
    connections = []

    async def open_one(i):
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(mqtt_raw.connect(f"load-{i}", keepalive=60))
            await writer.drain()
            answer = await asyncio.wait_for(reader.readexactly(4), 20)
            connections.append((reader, writer))
            return answer == CONNACK_OK

    connacks = await asyncio.gather(*(open_one(i) for i in range(count)))

    async def ping(reader, writer):
        writer.write(mqtt_raw.pingreq())
        await writer.drain()
        return await asyncio.wait_for(reader.readexactly(2), 20) == PINGRESP

    pings = await asyncio.gather(*(ping(r, w) for r, w in connections))
    for _, writer in connections:
        writer.write(mqtt_raw.disconnect())
    await asyncio.gather(*(w.drain() for _, w in connections))
    for _, writer in connections:
        writer.close()
    return sum(connacks), sum(pings)


def test_ten_thousand_concurrent_connections_on_four_shards(start_broker):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    broker = start_broker(shards=4)
    connacks, pings = asyncio.run(hold_connections(broker.port, 10_000))
    assert connacks == 10_000
    assert pings == 10_000
    assert broker.stop() == 0
    stats = shard_stats(broker.log())
    assert sorted(stats) == [0, 1, 2, 3], broker.log()[-2000:]
    for shard, (accepted, connects) in stats.items():
        # Every shard accepted sockets (SO_REUSEPORT) and owned client ids.
        assert accepted > 0, f"shard {shard} accepted nothing"
        assert connects > 0, f"shard {shard} handled no CONNECT"
    assert sum(c for _, c in stats.values()) == 10_000


def test_more_shards_than_cores_routes_across_all_of_them(start_broker):
    shards = 2 * os.cpu_count() + 1
    broker = start_broker(shards=shards)
    # Client ids hash to different shards; every publisher reaches every subscriber.
    subscribers = []
    for i in range(6):
        sub = mqtt_raw.Client(broker.port)
        assert sub.connect(f"sub-{i}") == b"\x00\x00"
        sub.send(mqtt_raw.subscribe(1, ("spread/#", 0)))
        assert sub.expect(mqtt_raw.SUBACK).body == b"\x00\x01\x00"
        subscribers.append(sub)
    for i in range(6):
        pub = mqtt_raw.Client(broker.port)
        pub.connect(f"pub-{i}")
        pub.send(mqtt_raw.publish(f"spread/{i}", f"m{i}"))
        pub.send(mqtt_raw.disconnect())
        pub.close()
    for sub in subscribers:
        got = sorted(sub.expect(mqtt_raw.PUBLISH).publish_fields()["payload"] for _ in range(6))
        assert got == [f"m{i}".encode() for i in range(6)]
    assert len(shard_stats("")) == 0  # parser sanity: no lines, no shards
    assert broker.stop() == 0
    stats = shard_stats(broker.log())
    assert len(stats) == shards


def test_sigterm_under_load_exits_zero_and_tells_mqtt5_clients(start_broker):
    broker = start_broker(shards=2)
    v5 = mqtt_raw.Client(broker.port)
    assert v5.connect("v5-watcher", version=5)[:2] == b"\x00\x00"
    # Publishers and subscribers busy on both shards.
    sub = mqtt_raw.Client(broker.port)
    sub.connect("load-sub")
    sub.send(mqtt_raw.subscribe(1, ("load/#", 1)))
    sub.expect(mqtt_raw.SUBACK)
    publishers = []
    for i in range(8):
        pub = mqtt_raw.Client(broker.port)
        pub.connect(f"load-pub-{i}")
        publishers.append(pub)
    burst = b"".join(mqtt_raw.publish(f"load/{i}", b"x" * 100) for i in range(500))
    for pub in publishers:
        pub.send(burst)
    started = time.monotonic()
    broker.process.send_signal(signal.SIGTERM)
    disconnect = v5.expect(mqtt_raw.DISCONNECT)
    assert disconnect.body[0] == 0x8B  # Server shutting down
    assert broker.stop(timeout=10, send_signal=False) == 0
    assert time.monotonic() - started < 5.0
    assert "stopped: closed" in broker.log()


@pytest.mark.parametrize("errno_name", ["eperm", "enosys"])
def test_refuses_to_start_without_io_uring_and_says_why(errno_name):
    helper = ROOT / "build" / "tests" / "integration" / "without_io_uring"
    result = subprocess.run([str(helper), errno_name, str(BINARY), "--listen=127.0.0.1:0"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "io_uring" in result.stderr
    if errno_name == "eperm":
        assert "io_uring_disabled" in result.stderr or "seccomp" in result.stderr
    else:
        assert "kernel" in result.stderr
