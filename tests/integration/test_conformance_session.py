"""MQTT 3.1 / 3.1.1 conformance: sessions (3.1.1 sections 3.1.2.4, 4.1, 4.4):
clean session, persistent subscriptions, offline queueing and its bound,
redelivery with DUP on reconnect, takeover, on 1 and 4 shards."""
import re
import threading
import time

import paho.mqtt.client as paho
import pytest

import mqtt_raw as raw

SHARDS = pytest.mark.parametrize("shards", [1, 4])
VERSIONS = pytest.mark.parametrize("version", [3, 4])


def full_queue_drops(broker):
    assert broker.stop() == 0
    return sum(int(n) for n in re.findall(r"(\d+) at full queues", broker.log()))


@SHARDS
@VERSIONS
def test_clean_session_discards_state(start_broker, shards, version):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("clean", 2, shards)
    pub = raw.connected(broker.port, pub_id, version=version)
    sub = raw.subscribed(broker.port, sub_id, ("cs/t", 1), version=version)
    sub.send(raw.disconnect())
    sub.close()
    raw.publish_and_confirm(pub, "cs/t", "lost", qos=1)
    # [MQTT-3.1.2-6]: nothing of the old session survives, not even the subscription.
    sub = raw.Client(broker.port)
    assert sub.connect(sub_id, version=version, clean=True)[0] == 0
    raw.publish_and_confirm(pub, "cs/t", "not subscribed", qos=1)
    assert sub.no_packet(0.4)


@SHARDS
@VERSIONS
def test_persistent_session_keeps_subscriptions_and_queues_qos1_qos2(start_broker, shards,
                                                                      version):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("persist", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("ps/#", 2), version=version, clean=False)
    sub.send(raw.disconnect())
    sub.close()
    pub = raw.connected(broker.port, pub_id, version=version)
    for n, qos in enumerate((0, 1, 2, 1, 0, 2)):
        raw.publish_and_confirm(pub, f"ps/{n}", f"m{n}-q{qos}", qos=qos, packet_id=n + 1)
    sub = raw.Client(broker.port)
    body = sub.connect(sub_id, version=version, clean=False)
    assert body == (b"\x01\x00" if version == 4 else b"\x00\x00")  # [MQTT-3.2.2-2]
    # [MQTT-3.1.2-4, MQTT-3.1.2-5]: QoS 1 and 2 kept, in order; QoS 0 not by default.
    got = raw.read_publishes(sub, 4)
    assert [m["payload"] for m in got] == [b"m1-q1", b"m2-q2", b"m3-q1", b"m5-q2"]
    assert [m["qos"] for m in got] == [1, 2, 1, 2]


@SHARDS
def test_queue_qos0_offline_flag(start_broker, shards):
    broker = start_broker("--queue-qos0-offline", shards=shards)
    sub_id, pub_id = raw.spread_ids("q0off", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("q0/#", 1), clean=False)
    sub.close()
    time.sleep(0.1)
    pub = raw.connected(broker.port, pub_id)
    for n in range(3):
        raw.publish_and_confirm(pub, "q0/t", f"m{n}", qos=n % 2, packet_id=n + 1)
    sub = raw.Client(broker.port)
    assert sub.connect(sub_id, clean=False) == b"\x01\x00"
    assert [m["payload"] for m in raw.read_publishes(sub, 3)] == [b"m0", b"m1", b"m2"]


@SHARDS
def test_offline_queue_is_bounded_and_drops_are_counted(start_broker, shards):
    broker = start_broker("--max-queued-messages=10", shards=shards)
    sub_id, pub_id = raw.spread_ids("bound", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("bd/t", 1), clean=False)
    sub.close()
    time.sleep(0.1)
    pub = raw.connected(broker.port, pub_id)
    for n in range(25):
        raw.publish_and_confirm(pub, "bd/t", f"m{n}", qos=1, packet_id=n + 1)
    sub = raw.Client(broker.port)
    assert sub.connect(sub_id, clean=False) == b"\x01\x00"
    got = raw.read_publishes(sub, 10)
    assert [m["payload"] for m in got] == [f"m{n}".encode() for n in range(10)]
    assert sub.no_packet(0.3)
    sub.close()
    assert full_queue_drops(broker) == 15


@SHARDS
@VERSIONS
def test_unacknowledged_messages_are_resent_with_dup_on_reconnect(start_broker, shards, version):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("redeliver", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("rd/#", 2), version=version, clean=False)
    pub = raw.connected(broker.port, pub_id, version=version)
    raw.publish_and_confirm(pub, "rd/1", "one", qos=1, packet_id=1)
    raw.publish_and_confirm(pub, "rd/2", "two", qos=2, packet_id=2)
    raw.publish_and_confirm(pub, "rd/3", "three", qos=2, packet_id=3)
    first = raw.read_publishes(sub, 3, ack_them=False)
    # Acknowledge only the PUBLISH of "three" (PUBREC): the broker answers PUBREL.
    sub.send(raw.ack(raw.PUBREC, first[2]["packet_id"]))
    assert sub.expect(raw.PUBREL).packet_id() == first[2]["packet_id"]
    sub.close()  # gone without PUBACK, PUBREC, PUBCOMP
    time.sleep(0.1)
    sub = raw.Client(broker.port)
    assert sub.connect(sub_id, version=version, clean=False)[1] == 0
    # [MQTT-4.4.0-1]: PUBLISH again with DUP and the same ids, then PUBREL again,
    # in the original order.
    p1, p2, rel = sub.read(), sub.read(), sub.read()
    f1, f2 = p1.publish_fields(), p2.publish_fields()
    assert (f1["payload"], f1["dup"], f1["packet_id"]) == (b"one", True, first[0]["packet_id"])
    assert (f2["payload"], f2["dup"], f2["packet_id"]) == (b"two", True, first[1]["packet_id"])
    assert rel.type == raw.PUBREL and rel.packet_id() == first[2]["packet_id"]
    sub.send(raw.ack(raw.PUBACK, f1["packet_id"]) + raw.ack(raw.PUBREC, f2["packet_id"]) +
             raw.ack(raw.PUBCOMP, first[2]["packet_id"]))
    assert sub.expect(raw.PUBREL).packet_id() == f2["packet_id"]
    sub.send(raw.ack(raw.PUBCOMP, f2["packet_id"]))
    assert sub.no_packet(0.3)


@SHARDS
def test_takeover_keeps_a_persistent_session(start_broker, shards):
    broker = start_broker(shards=shards)
    for n in range(6):
        sub_id, pub_id = raw.spread_ids(f"tk{n}-", 2, shards)
        first = raw.subscribed(broker.port, sub_id, ("tk/t", 1), clean=False)
        second = raw.Client(broker.port)
        assert second.connect(sub_id, clean=False) == b"\x01\x00"
        assert first.closed_by_broker(3)
        pub = raw.connected(broker.port, pub_id)
        raw.publish_and_confirm(pub, "tk/t", "after takeover", qos=1)
        assert raw.read_publishes(second, 1)[0]["payload"] == b"after takeover"
        second.send(raw.disconnect())


@SHARDS
def test_paho_offline_message_queueing(start_broker, shards):
    """Paho interoperability suite, test_offline_message_queueing."""
    broker = start_broker(shards=shards)
    got = []
    done = threading.Event()

    def on_message(client, userdata, message):
        got.append((message.topic, message.qos))

    a = paho.Client("myclientid", clean_session=False, protocol=paho.MQTTv311)
    a.connect("127.0.0.1", broker.port)
    a.loop_start()
    subscribed = threading.Event()
    a.on_subscribe = lambda *args: subscribed.set()
    a.subscribe("+/+", 2)
    assert subscribed.wait(5)
    a.disconnect()
    a.loop_stop()

    b = paho.Client("myclientid2", protocol=paho.MQTTv311)
    b.connect("127.0.0.1", broker.port)
    b.loop_start()
    infos = [b.publish(t, f"qos {q}", q) for t, q in (("TopicA/B", 0), ("Topic/C", 1),
                                                       ("TopicA/C", 2))]
    for info in infos:
        info.wait_for_publish()
    b.disconnect()
    b.loop_stop()

    a = paho.Client("myclientid", clean_session=False, protocol=paho.MQTTv311)
    a.on_message = on_message
    a.connect("127.0.0.1", broker.port)
    a.loop_start()
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    a.disconnect()
    a.loop_stop()
    assert sorted(got) == [("Topic/C", 1), ("TopicA/C", 2)]
