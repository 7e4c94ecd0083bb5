"""Configurable limits and bad or slow clients, on 1 and 4 shards: packet
size, topic length and levels, subscriptions per client, and a slow
subscriber, which must neither grow the broker without bound nor slow anyone
else down (QoS 0 dropped and counted, QoS 1/2 held back by pausing the
publisher, never lost)."""
import asyncio
import re
import time

import pytest

import mqtt_raw as raw

SHARDS = pytest.mark.parametrize("shards", [1, 4])


def rss_kb(broker):
    with open(f"/proc/{broker.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def counter(broker, name):
    return sum(int(n) for n in re.findall(rf"(\d+) {name}", broker.log()))


@SHARDS
def test_max_packet_size(start_broker, shards):
    broker = start_broker("--max-packet-size=1000", shards=shards)
    sub_id, pub_id = raw.spread_ids("mps", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("mps/t", 1))
    big = raw.connected(broker.port, "mps-big")
    big.send(raw.publish("mps/t", b"x" * 2000, qos=1, packet_id=1))
    assert big.closed_by_broker(3)
    pub = raw.connected(broker.port, pub_id)
    raw.publish_and_confirm(pub, "mps/t", b"y" * 900, qos=1)
    assert raw.read_publishes(sub, 1)[0]["payload"] == b"y" * 900


@SHARDS
def test_max_topic_length_and_levels(start_broker, shards):
    broker = start_broker("--max-topic-length=20", "--max-topic-levels=3", shards=shards)
    c = raw.connected(broker.port, "mtl")
    c.send(raw.subscribe(1, ("a/b/c", 0), ("a/b/c/d", 0), ("x" * 21, 0), ("x" * 20, 0)))
    assert list(c.expect(raw.SUBACK).body[2:]) == [0, 0x80, 0x80, 0]
    for topic in ("a/b/c/d", "y" * 21):
        bad = raw.connected(broker.port, "mtl-bad")
        bad.send(raw.publish(topic, "x"))
        assert bad.closed_by_broker(3), topic
    pub = raw.connected(broker.port, "mtl-pub")
    raw.publish_and_confirm(pub, "a/b/c", "fits", qos=1)
    assert raw.read_publishes(c, 1)[0]["payload"] == b"fits"


@SHARDS
def test_max_subscriptions_per_client(start_broker, shards):
    broker = start_broker("--max-subscriptions-per-client=3", shards=shards)
    c = raw.connected(broker.port, "msub")
    c.send(raw.subscribe(1, ("s/1", 1), ("s/2", 1), ("s/3", 1), ("s/4", 1)))
    assert list(c.expect(raw.SUBACK).body[2:]) == [1, 1, 1, 0x80]
    # Replacing one it has is not a new one.
    c.send(raw.subscribe(2, ("s/2", 2)))
    assert list(c.expect(raw.SUBACK).body[2:]) == [2]
    c.send(raw.unsubscribe(3, "s/1"))
    c.expect(raw.UNSUBACK)
    c.send(raw.subscribe(4, ("s/4", 0)))
    assert list(c.expect(raw.SUBACK).body[2:]) == [0]


@SHARDS
def test_garbage_closes_only_that_connection(start_broker, shards):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("garb", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("g/t", 0))
    pub = raw.connected(broker.port, pub_id)
    for junk in (b"\xff" * 64, b"GET / HTTP/1.1\r\n\r\n", b"\x10\x80\x80\x80\x80\x01"):
        bad = raw.Client(broker.port)
        bad.send(junk)
        assert bad.closed_by_broker(3)
        bad = raw.connected(broker.port, "garb-conn")
        bad.send(junk)
        assert bad.closed_by_broker(3)
    raw.publish_and_confirm(pub, "g/t", "fine")
    assert raw.read_publishes(sub, 1)[0]["payload"] == b"fine"


async def slow_subscriber_qos1(port, shards):
    slow_id, other_id, pub_id, pub2_id = raw.spread_ids("bp", 4, shards)
    slow = raw.AsyncClient(port, slow_id)
    await slow.connect()
    await slow.subscribe(("bp/slow", 1))
    received = []
    slow.on_message = lambda t, p, q, d: received.append(int(p[:8]))
    other_got = []
    other = raw.AsyncClient(port, other_id, on_message=lambda t, p, q, d: other_got.append(p))
    await other.connect()
    await other.subscribe(("bp/other", 1))
    # Keep-alive 1 s: a publisher held back for longer is not the one at fault
    # and must not be closed for its silence.
    pub = raw.AsyncClient(port, pub_id, window=100)
    await pub.connect(keepalive=1)
    pub2 = raw.AsyncClient(port, pub2_id)
    await pub2.connect()

    slow.paused = True  # stops reading its socket
    total = 20000
    sent = [0]

    async def flood():
        for n in range(total):
            await pub.publish("bp/slow", b"%08d" % n + b"." * 2000, qos=1)
            sent[0] = n + 1
        await pub.flush(timeout=60)

    task = asyncio.ensure_future(flood())
    await asyncio.sleep(1.5)
    stalled_at = sent[0]
    # Back-pressure: the publisher is held well short of the end...
    assert stalled_at < total / 2, stalled_at
    # ...while other subscribers on the same broker get their own topics.
    for n in range(500):
        await pub2.publish("bp/other", b"o%d" % n, qos=1)
    await pub2.flush(timeout=10)
    deadline = time.monotonic() + 10
    while len(other_got) < 500 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert other_got == [b"o%d" % n for n in range(500)]
    await asyncio.sleep(0.5)
    assert sent[0] < total / 2, "the publisher kept going"
    slow.paused = False  # it catches up
    await asyncio.wait_for(task, 60)
    assert not pub.closed.is_set()
    await pub.abort()
    deadline = time.monotonic() + 30
    while len(received) < total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    assert received == list(range(total))
    for c in (slow, other, pub2):
        await c.disconnect()
    return stalled_at


@SHARDS
def test_slow_qos1_subscriber_pauses_the_publisher_and_loses_nothing(start_broker, shards):
    broker = start_broker("--max-queued-messages=200", shards=shards)
    before = rss_kb(broker)
    stalled_at = asyncio.run(slow_subscriber_qos1(broker.port, shards))
    grown_mb = (rss_kb(broker) - before) / 1024
    # 20,000 x 2 kB went through; the broker held a few hundred at most.
    assert grown_mb < 24, f"RSS grew {grown_mb:.0f} MB"
    assert broker.stop() == 0
    assert counter(broker, "at full queues") == 0
    assert counter(broker, "publisher pauses") >= 1
    print(f"publisher stalled after {stalled_at} messages; RSS grew {grown_mb:.1f} MB")


async def slow_subscriber_qos0(port, shards):
    slow_id, other_id, pub_id = raw.spread_ids("bp0", 3, shards)
    slow = raw.AsyncClient(port, slow_id)
    await slow.connect()
    await slow.subscribe(("bp0/t", 0))
    other_got = []
    other = raw.AsyncClient(port, other_id, on_message=lambda t, p, q, d: other_got.append(p))
    await other.connect()
    await other.subscribe(("bp0/t", 0))
    slow.paused = True
    pub = raw.AsyncClient(port, pub_id)
    await pub.connect()
    payload = b"z" * 10000
    for n in range(3000):  # 30 MB, far beyond the slow one's send queue bound
        await pub.publish("bp0/t", payload, qos=0)
        if n % 100 == 99:
            await pub.writer.drain()
            await asyncio.sleep(0.005)  # let the fast one keep up
    await pub.request(raw.pingreq(), raw.PINGRESP)
    deadline = time.monotonic() + 10
    while len(other_got) < 3000 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    # The publisher was never held back and the fast subscriber got everything.
    assert len(other_got) == 3000
    for c in (slow, other, pub):
        await c.abort()


@SHARDS
def test_slow_qos0_subscriber_drops_with_a_counter(start_broker, shards):
    broker = start_broker("--max-outbound-bytes=1000000", shards=shards)
    before = rss_kb(broker)
    asyncio.run(slow_subscriber_qos0(broker.port, shards))
    grown_mb = (rss_kb(broker) - before) / 1024
    assert grown_mb < 16, f"RSS grew {grown_mb:.0f} MB"
    assert broker.stop() == 0
    assert counter(broker, "QoS 0 to slow subscribers") > 1000
