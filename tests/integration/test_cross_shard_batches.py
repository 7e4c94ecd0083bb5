"""Messages crossing shards. A small plain QoS 0 message that only other
shards want travels in a publish batch (src/broker/publish_batch.h);
anything else (QoS 1 or 2, a big payload, a retained message, kept MQTT 5
properties, an expiry) as a shared Message. Whatever way each takes, one publisher's messages on a topic
reach a subscriber in the order they were sent [MQTT-4.6.0-5], and messages
a subscriber's session keeps arrive intact.
"""
import pytest

import mqtt_raw as raw
from mqtt5_wire import MESSAGE_EXPIRY, USER_PROPERTY, connected5, props, publish5

SHARDS = pytest.mark.parametrize("shards", [1, 4])


def mixed_burst(count):
    """(payload, publish packet) pairs: mostly small plain messages, with
    every kind that takes the other way in between."""
    out = []
    for i in range(count):
        kind = i % 9
        payload = f"{i}:".encode()
        properties = b""
        retain = False
        if kind == 3:
            payload += b"x" * 900  # over the batch's per-message limit
        elif kind == 5:
            retain = True
        elif kind == 6:
            properties = props((USER_PROPERTY, ("k", str(i))))
        elif kind == 7:
            properties = props((MESSAGE_EXPIRY, 60))
        else:
            payload += b"small"
        out.append((payload, publish5("mix/t", payload, retain=retain, properties=properties)))
    return out


@SHARDS
def test_one_burst_of_every_kind_arrives_in_publish_order(start_broker, shards):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("mix", 2, shards)
    if shards > 1:
        assert raw.home_shard(sub_id, shards) != raw.home_shard(pub_id, shards)
    sub = raw.subscribed(broker.port, sub_id, ("mix/#", 0))
    pub, _ = connected5(broker.port, pub_id)
    burst = mixed_burst(400)
    # One write: the broker decodes it in one loop turn, so small messages
    # pile up in a batch while the others are posted between them.
    pub.send(b"".join(packet for _, packet in burst))
    pub.send(raw.pingreq())
    pub.expect(raw.PINGRESP)
    got = [m["payload"] for m in raw.read_publishes(sub, len(burst), timeout=10.0)]
    assert got == [payload for payload, _ in burst]
    assert sub.no_packet(0.3)


@SHARDS
def test_messages_kept_for_an_offline_session_arrive_intact(start_broker, shards):
    # The receiving shard builds each batched message in the memory of the
    # last one nobody kept; an offline session that queues QoS 0 keeps every
    # one, so none may be built over another.
    broker = start_broker("--queue-qos0-offline", shards=shards)
    sub_id, pub_id = raw.spread_ids("keep", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("keep/#", 1), clean=False)
    sub.close()
    pub = raw.connected(broker.port, pub_id)
    expected = [f"{i}:{'y' * (i % 50)}".encode() for i in range(300)]
    pub.send(b"".join(raw.publish(f"keep/{i % 3}", payload) for i, payload in enumerate(expected)))
    pub.send(raw.pingreq())
    pub.expect(raw.PINGRESP)
    sub = raw.connected(broker.port, sub_id, clean=False)
    got = raw.read_publishes(sub, len(expected), timeout=10.0)
    assert [m["payload"] for m in got] == expected
    assert [m["topic"] for m in got] == [f"keep/{i % 3}" for i in range(len(expected))]


@SHARDS
def test_batched_and_queued_messages_interleave_in_order_for_a_slow_reader(
        start_broker, shards):
    # A subscriber that reads nothing for a while: QoS 1 messages wait in its
    # queue while QoS 0 ones keep crossing in batches; once it reads, each
    # QoS's messages come in the order sent.
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("slow", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("slow/q0", 0), ("slow/q1", 1))
    pub = raw.connected(broker.port, pub_id)
    packets, q0, q1 = [], [], []
    for i in range(600):
        if i % 2:
            payload = f"q1:{i}".encode()
            packets.append(raw.publish("slow/q1", payload, qos=1, packet_id=i))
            q1.append(payload)
        else:
            payload = f"q0:{i}".encode()
            packets.append(raw.publish("slow/q0", payload))
            q0.append(payload)
    pub.send(b"".join(packets))
    for _ in q1:
        pub.expect(raw.PUBACK)
    got = raw.read_publishes(sub, len(packets), timeout=10.0)
    assert [m["payload"] for m in got if m["topic"] == "slow/q0"] == q0
    assert [m["payload"] for m in got if m["topic"] == "slow/q1"] == q1
