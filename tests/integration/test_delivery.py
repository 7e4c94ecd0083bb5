"""End-to-end delivery under load on 4 shards: 40 publishers x 2,000 messages
on topics whose publishers live on every shard, 20 subscribers with exact,
wildcard and overlapping filters. Every subscriber must get exactly the
messages it subscribed to, each once, in each publisher's order.

The clients are asyncio raw-socket clients (mqtt_raw.AsyncClient) so that one
Python process can drive ~250k deliveries quickly.
"""
import asyncio
import re
import time

import pytest

import mqtt_raw

PUBLISHERS = 40
MESSAGES = 2000
GROUPS = 10  # publisher p publishes on dl/g{p % GROUPS}/p{p}


def topic_of(p):
    return f"dl/g{p % GROUPS}/p{p}"


def subscriber_filters():
    """20 subscribers: (client id, [filters])."""
    subs = []
    for k in range(10):  # exact
        subs.append((f"dl-exact-{k}", [f"dl/g{(3 * k) % GROUPS}/p{3 * k}"]))
    for j in range(5):  # single-level wildcard over one group: 4 publishers
        subs.append((f"dl-plus-{j}", [f"dl/g{j}/+"]))
    for j in range(3):  # overlapping: the same publisher matched twice
        subs.append((f"dl-overlap-{j}", [f"dl/+/p{j + 5}", f"dl/g{(j + 5) % GROUPS}/#"]))
    subs.append(("dl-multi", ["dl/g7/#", "dl/+/p1"]))
    subs.append(("dl-all", ["dl/#"]))
    return subs


def matches(topic_filter, topic):
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


def expected_publishers(filters):
    return sorted(p for p in range(PUBLISHERS) if any(matches(f, topic_of(p)) for f in filters))


def drops(log):
    """Sum of messages the broker dropped at full queues, from its shutdown log."""
    return sum(int(m) for m in re.findall(r"(\d+) at full queues", log))


async def run_delivery(port, qos, reconnect):
    subs = subscriber_filters()
    received = {cid: {} for cid, _ in subs}  # cid -> publisher -> [seq]
    resent = [0, 0]  # messages received with DUP, resends recognised by packet id

    def recorder(cid):
        per = received[cid]

        def on_message(topic, payload, msg_qos, dup):
            resent[0] += dup
            p, _, seq = payload.partition(b":")
            per.setdefault(int(p), []).append(int(seq))
        return on_message

    clients = {}
    for cid, filters in subs:
        client = mqtt_raw.AsyncClient(port, cid, on_message=recorder(cid))
        await client.connect(clean=not reconnect)
        codes = await client.subscribe(*[(f, qos) for f in filters])
        assert codes == [qos] * len(filters)
        clients[cid] = client
    # Every SUBACK is out only after all shards know the filters, so
    # publishing may start at once.
    expected = {cid: expected_publishers(filters) for cid, filters in subs}
    totals = {cid: len(ps) * MESSAGES for cid, ps in expected.items()}

    publishers = []
    for p in range(PUBLISHERS):
        client = mqtt_raw.AsyncClient(port, f"dl-pub-{p}", window=100)
        await client.connect()
        publishers.append(client)

    async def publish_all(p, client):
        topic = topic_of(p)
        for seq in range(MESSAGES):
            await client.publish(topic, b"%d:%d" % (p, seq), qos=qos)
        await client.flush(timeout=120)

    async def bounce(cid, filters):
        """Disconnects a persistent subscriber twice mid-stream (once
        abruptly, once with DISCONNECT) and comes back without subscribing."""
        for round_ in range(2):
            target = totals[cid] * (round_ + 1) // 3
            while sum(len(v) for v in received[cid].values()) < target:
                await asyncio.sleep(0.01)
            old = clients[cid]
            if round_ == 0:
                await old.abort()
            else:
                await old.disconnect()
            await asyncio.sleep(0.3)
            fresh = mqtt_raw.AsyncClient(port, cid, on_message=recorder(cid))
            fresh.inbound_qos2 = old.inbound_qos2  # the client's QoS 2 state survives
            resent[1] += old.duplicates_suppressed
            connack = await fresh.connect(clean=False)
            assert connack[0] == 1, "session present after reconnect"
            clients[cid] = fresh

    started = time.monotonic()
    tasks = [publish_all(p, c) for p, c in enumerate(publishers)]
    if reconnect:
        tasks += [bounce(cid, f) for cid, f in subs[::2]]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), 90)
    except asyncio.TimeoutError:
        state = [f"{cid}: {sum(len(v) for v in received[cid].values())}/{totals[cid]}"
                 for cid in received]
        state += [f"pub {p}: {len(c.outstanding)} outstanding"
                  for p, c in enumerate(publishers) if c.outstanding]
        raise AssertionError("stalled:\n" + "\n".join(state))

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(sum(len(v) for v in received[cid].values()) >= totals[cid] for cid in received):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # anything extra (a duplicate) would show up now
    elapsed = time.monotonic() - started

    wrong = []
    for cid, _ in subs:
        got = received[cid]
        if sorted(got) != expected[cid]:
            wrong.append(f"{cid}: publishers {sorted(got)}")
            continue
        for p in expected[cid]:
            if got[p] != list(range(MESSAGES)):
                first = next((i for i, (a, b) in enumerate(zip(got[p], range(MESSAGES)))
                              if a != b), min(len(got[p]), MESSAGES))
                wrong.append(f"{cid} from publisher {p}: {len(got[p])} messages, "
                             f"first wrong at {first}: {got[p][max(0, first - 2):first + 3]}")
    assert not wrong, f"{len(wrong)} wrong streams:\n" + "\n".join(wrong[:40])
    for client in list(clients.values()) + publishers:
        resent[1] += client.duplicates_suppressed
        await client.disconnect()
    if reconnect:
        print(f"resent after reconnect: {resent[0]} new to the client with DUP, "
              f"{resent[1]} recognised as already received")
    return sum(totals.values()), elapsed


def test_qos1_forty_publishers_twenty_subscribers_four_shards(start_broker):
    # Default queue bounds: a fast crowd of publishers must be slowed down by
    # back-pressure, never cause a QoS 1 drop.
    broker = start_broker(shards=4)
    try:
        deliveries, elapsed = asyncio.run(run_delivery(broker.port, qos=1, reconnect=False))
    finally:
        broker.stop()
        print("\n".join(line for line in broker.log_lines if "shard" in line))
    print(f"QoS 1: {PUBLISHERS * MESSAGES} published, {deliveries} delivered in {elapsed:.1f} s")
    assert broker.stop() == 0
    assert drops(broker.log()) == 0, broker.log()


def test_qos2_with_persistent_subscribers_reconnecting_four_shards(start_broker):
    # The queue bound is sized so that a subscriber offline for a moment can
    # never legitimately lose anything (dl-all is sent 80,000 messages).
    broker = start_broker("--max-queued-messages=200000", "--max-queued-bytes=1000000000",
                          shards=4)
    deliveries, elapsed = asyncio.run(run_delivery(broker.port, qos=2, reconnect=True))
    print(f"QoS 2: {PUBLISHERS * MESSAGES} published, {deliveries} delivered in {elapsed:.1f} s")
    assert broker.stop() == 0
    assert drops(broker.log()) == 0, broker.log()
