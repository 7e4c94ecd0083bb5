"""MQTT 3.1 / 3.1.1 conformance: PUBLISH and the QoS 1/2 flows in both
directions (3.1.1 sections 2.3, 3.3-3.7, 4.3, 4.6), on 1 and 4 shards.
Publisher and subscriber ids are chosen on different home shards."""
import struct
import time

import pytest

import mqtt_raw as raw

SHARDS = pytest.mark.parametrize("shards", [1, 4])
VERSIONS = pytest.mark.parametrize("version", [3, 4])


def pair(broker, prefix, topic_filter, qos, version=4):
    sub_id, pub_id = raw.spread_ids(prefix, 2, broker.shards)
    sub = raw.subscribed(broker.port, sub_id, (topic_filter, qos), version=version)
    pub = raw.connected(broker.port, pub_id, version=version)
    return sub, pub


@SHARDS
@VERSIONS
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_delivery_at_min_of_publish_and_granted_qos(start_broker, shards, version, pub_qos,
                                                    sub_qos):
    broker = start_broker(shards=shards)
    sub, pub = pair(broker, "qos", "q/t", sub_qos, version)
    raw.publish_and_confirm(pub, "q/t", b"payload", qos=pub_qos, packet_id=7)
    got = raw.read_publishes(sub, 1)[0]
    assert got["topic"] == "q/t" and got["payload"] == b"payload"
    assert got["qos"] == min(pub_qos, sub_qos)  # [MQTT-3.8.4-6]
    assert not got["retain"] and not got["dup"]
    if got["qos"]:
        assert got["packet_id"] != 0  # [MQTT-2.3.1-1]
    if got["qos"] == 2:
        # The broker's side of the QoS 2 flow: PUBREL after our PUBREC.
        rel = sub.expect(raw.PUBREL)
        assert rel.flags == 0x2 and rel.packet_id() == got["packet_id"]  # [MQTT-3.6.1-1]
        sub.send(raw.ack(raw.PUBCOMP, got["packet_id"]))
    assert sub.no_packet(0.2)


@SHARDS
@VERSIONS
def test_qos2_publish_resent_before_pubrel_is_delivered_once(start_broker, shards, version):
    broker = start_broker(shards=shards)
    sub, pub = pair(broker, "eo", "eo/t", 2, version)
    pub.send(raw.publish("eo/t", "once", qos=2, packet_id=42))
    assert pub.expect(raw.PUBREC).packet_id() == 42
    # The client did not see PUBREC (say) and sends the PUBLISH again, DUP set.
    pub.send(raw.publish("eo/t", "once", qos=2, packet_id=42, dup=True))
    assert pub.expect(raw.PUBREC).packet_id() == 42  # acknowledged again
    pub.send(raw.ack(raw.PUBREL, 42))
    assert pub.expect(raw.PUBCOMP).packet_id() == 42
    # [MQTT-4.3.3-2]: delivered exactly once.
    assert [m["payload"] for m in raw.read_publishes(sub, 1)] == [b"once"]
    rel = sub.expect(raw.PUBREL)
    sub.send(raw.ack(raw.PUBCOMP, rel.packet_id()))
    assert sub.no_packet(0.3)
    # After PUBREL the id is free: the same id is a new message.
    raw.publish_and_confirm(pub, "eo/t", "again", qos=2, packet_id=42)
    msgs = raw.read_publishes(sub, 1)
    assert msgs[0]["payload"] == b"again"


@SHARDS
def test_pubrel_for_unknown_id_is_answered_with_pubcomp(start_broker, shards):
    broker = start_broker(shards=shards)
    c = raw.connected(broker.port, "unknown-rel")
    c.send(raw.ack(raw.PUBREL, 999))
    assert c.expect(raw.PUBCOMP).packet_id() == 999


@SHARDS
def test_qos1_dup_publish_is_acknowledged(start_broker, shards):
    broker = start_broker(shards=shards)
    sub, pub = pair(broker, "dup1", "d1/t", 1)
    pub.send(raw.publish("d1/t", "x", qos=1, packet_id=5, dup=True))
    assert pub.expect(raw.PUBACK).packet_id() == 5
    # The DUP flag of the incoming PUBLISH is not propagated [MQTT-3.3.1-3].
    assert raw.read_publishes(sub, 1)[0]["dup"] is False


@SHARDS
def test_outbound_packet_ids_are_unique_while_in_flight(start_broker, shards):
    broker = start_broker(shards=shards)
    sub, pub = pair(broker, "ids", "ids/t", 2)
    for n in range(20):
        raw.publish_and_confirm(pub, "ids/t", str(n), qos=1 + n % 2, packet_id=n + 1)
    msgs = raw.read_publishes(sub, 20, ack_them=False)
    ids = [m["packet_id"] for m in msgs]
    assert len(set(ids)) == 20 and 0 not in ids  # [MQTT-2.3.1-2]
    assert [m["payload"] for m in msgs] == [str(n).encode() for n in range(20)]


@SHARDS
def test_inflight_window(start_broker, shards):
    broker = start_broker("--max-inflight=5", shards=shards)
    sub, pub = pair(broker, "win", "win/t", 1)
    for n in range(12):
        raw.publish_and_confirm(pub, "win/t", str(n), qos=1, packet_id=n + 1)
    first = raw.read_publishes(sub, 5, ack_them=False)
    assert sub.no_packet(0.3)  # the window is full
    for m in first[:2]:
        sub.send(raw.ack(raw.PUBACK, m["packet_id"]))
    nxt = raw.read_publishes(sub, 2, ack_them=False)
    assert sub.no_packet(0.3)
    for m in first[2:] + nxt:
        sub.send(raw.ack(raw.PUBACK, m["packet_id"]))
    rest = raw.read_publishes(sub, 5)
    payloads = [m["payload"] for m in first + nxt + rest]
    assert payloads == [str(n).encode() for n in range(12)]


@SHARDS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_order_of_one_publisher_across_shards(start_broker, shards, qos):
    broker = start_broker(shards=shards)
    ids = raw.spread_ids("ord", 4, shards)
    subs = [raw.subscribed(broker.port, cid, ("ord/#", 2)) for cid in ids[:3]]
    pub = raw.connected(broker.port, ids[3])
    for n in range(300):
        pub.send(raw.publish("ord/a", str(n), qos=qos, packet_id=n % 60000 + 1))
    for n in range(300 if qos else 0):
        assert pub.read().type in (raw.PUBACK, raw.PUBREC)
    for sub in subs:
        got = raw.read_publishes(sub, 300, timeout=10)
        assert [m["payload"] for m in got] == [str(n).encode() for n in range(300)]  # [MQTT-4.6.0-6]


@SHARDS
@pytest.mark.parametrize("bad,why", [
    (raw.publish("a/+", "x"), "wildcard in topic name [MQTT-3.3.2-2]"),
    (raw.publish("a/#", "x"), "wildcard in topic name [MQTT-3.3.2-2]"),
    (raw.packet(raw.PUBLISH, 0x06, raw.utf8("a") + b"\x00\x01"), "QoS 3 [MQTT-3.3.1-4]"),
    (raw.packet(raw.PUBLISH, 0x08, raw.utf8("a")), "DUP with QoS 0 [MQTT-3.3.1-2]"),
    (raw.packet(raw.PUBLISH, 0x02, raw.utf8("a") + b"\x00\x00"), "packet id 0 [MQTT-2.3.1-1]"),
    (raw.packet(raw.PUBLISH, 0, raw.utf8("")), "empty topic [MQTT-4.7.3-1]"),
    (raw.packet(raw.PUBLISH, 0, b"\x00\x03a\x00b"), "U+0000 in topic [MQTT-1.5.3-2]"),
    (raw.packet(raw.PUBLISH, 0, b"\x00\x02\xc3\x28"), "ill-formed UTF-8 [MQTT-1.5.3-1]"),
    (raw.packet(raw.PUBREL, 0, b"\x00\x01"), "PUBREL flags 0000 [MQTT-3.6.1-1]"),
    (raw.packet(raw.PUBACK, 2, b"\x00\x01"), "PUBACK reserved flags [MQTT-2.2.2-2]"),
    (raw.packet(raw.PINGREQ, 1, b""), "PINGREQ reserved flags [MQTT-2.2.2-2]"),
    (raw.packet(raw.CONNACK, 0, b"\x00\x00"), "CONNACK from a client"),
    (raw.packet(raw.SUBACK, 0, b"\x00\x01\x00"), "SUBACK from a client"),
    (raw.packet(15, 0, b""), "reserved packet type 15"),
    (raw.packet(0, 0, b""), "reserved packet type 0"),
    (b"\x30\xff\xff\xff\xff\x01", "remaining length over 4 bytes"),
])
def test_bad_packet_closes_that_connection_only(start_broker, shards, bad, why):
    broker = start_broker(shards=shards)
    sub, pub = pair(broker, "bad", "bad/t", 1)
    victim = raw.connected(broker.port, "bad-victim")
    victim.send(bad)
    assert victim.closed_by_broker(3), why
    # Everyone else carries on.
    raw.publish_and_confirm(pub, "bad/t", "still here", qos=1)
    assert raw.read_publishes(sub, 1)[0]["payload"] == b"still here"


@SHARDS
def test_no_subscriber_publish_is_acknowledged(start_broker, shards):
    broker = start_broker(shards=shards)
    pub = raw.connected(broker.port, "nobody-listens")
    for qos in (0, 1, 2):
        raw.publish_and_confirm(pub, "nobody/here", "x", qos=qos, packet_id=qos + 1)


@SHARDS
def test_large_payload(start_broker, shards):
    broker = start_broker(shards=shards)
    sub, pub = pair(broker, "big", "big/t", 1)
    payload = bytes(range(256)) * 1000  # 256 kB, shared rather than copied
    raw.publish_and_confirm(pub, "big/t", payload, qos=1)
    assert raw.read_publishes(sub, 1)[0]["payload"] == payload
