"""MQTT 3.1 / 3.1.1 conformance: SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK,
wildcards and $-topics (3.1.1 sections 3.8-3.11, 4.7), on 1 and 4 shards."""
import subprocess
import time

import pytest

import mqtt_raw as raw

SHARDS = pytest.mark.parametrize("shards", [1, 4])
VERSIONS = pytest.mark.parametrize("version", [3, 4])


@SHARDS
@VERSIONS
def test_suback_codes_per_filter(start_broker, shards, version):
    broker = start_broker(shards=shards)
    c = raw.connected(broker.port, "suback", version=version)
    c.send(raw.subscribe(0x1234, ("a/b", 0), ("a/+", 1), ("a/#", 2), ("a/#/b", 1), ("a+", 0),
                         ("#", 2), ("+/+/#", 1), ("b#", 2)))
    suback = c.expect(raw.SUBACK)
    assert suback.flags == 0
    assert suback.packet_id() == 0x1234  # [MQTT-3.8.4-2]
    # One code per filter, in order [MQTT-3.8.4-4, MQTT-3.8.4-5, MQTT-3.9.3-1];
    # an invalid filter gets 0x80 and the others still count.
    assert list(suback.body[2:]) == [0, 1, 2, 0x80, 0x80, 2, 1, 0x80]


@SHARDS
@pytest.mark.parametrize("bad,why", [
    (raw.packet(raw.SUBSCRIBE, 0, b"\x00\x01" + raw.utf8("a") + b"\x00"),
     "SUBSCRIBE flags 0000 [MQTT-3.8.1-1]"),
    (raw.packet(raw.SUBSCRIBE, 2, b"\x00\x01"), "no filter [MQTT-3.8.3-3]"),
    (raw.packet(raw.SUBSCRIBE, 2, b"\x00\x01" + raw.utf8("a") + b"\x03"),
     "requested QoS 3 [MQTT-3-8.3-4]"),
    (raw.packet(raw.SUBSCRIBE, 2, b"\x00\x01" + raw.utf8("a") + b"\x04"),
     "reserved bits [MQTT-3-8.3-4]"),
    (raw.packet(raw.SUBSCRIBE, 2, b"\x00\x00" + raw.utf8("a") + b"\x00"),
     "packet id 0 [MQTT-2.3.1-1]"),
    (raw.packet(raw.UNSUBSCRIBE, 0, b"\x00\x01" + raw.utf8("a")),
     "UNSUBSCRIBE flags 0000 [MQTT-3.10.1-1]"),
    (raw.packet(raw.UNSUBSCRIBE, 2, b"\x00\x01"), "no filter [MQTT-3.10.3-2]"),
])
def test_malformed_subscribe_and_unsubscribe_close(start_broker, shards, bad, why):
    broker = start_broker(shards=shards)
    c = raw.connected(broker.port, "badsub")
    c.send(bad)
    assert c.closed_by_broker(3), why
    assert c.buffer == b"", why


@SHARDS
@pytest.mark.parametrize("topic_filter,topic,match", [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),  # # includes the parent
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "any/thing/at/all", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),  # [MQTT-4.7.2-1]
    ("#", "$SYS/x", False),
    ("+/#", "$SYS/x", False),
    ("$SYS/#", "$SYS/monitor/Clients", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("$data/+", "$data/x", True),
    ("ACCOUNTS", "accounts", False),  # case-sensitive
    ("a/b", "a/b/", False),
])
def test_wildcard_matching_end_to_end(start_broker, shards, topic_filter, topic, match):
    # Without the broker's own $SYS/broker/... messages: "$SYS/#" must see
    # only the one message this test publishes.
    broker = start_broker("--sys-interval=0", shards=shards)
    sub_id, pub_id = raw.spread_ids("wild", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, (topic_filter, 1))
    pub = raw.connected(broker.port, pub_id)
    raw.publish_and_confirm(pub, topic, "m", qos=1)
    if match:
        assert raw.read_publishes(sub, 1)[0]["topic"] == topic
    else:
        assert sub.no_packet(0.4)


@SHARDS
def test_overlapping_subscriptions_deliver_one_copy_at_highest_qos(start_broker, shards):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("ovl", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("ovl/#", 2), ("ovl/+", 1), ("ovl/a", 0))
    pub = raw.connected(broker.port, pub_id)
    raw.publish_and_confirm(pub, "ovl/a", "x", qos=2)
    got = raw.read_publishes(sub, 1)
    assert got[0]["qos"] == 2  # [MQTT-3.3.5-1]
    sub.expect(raw.PUBREL)
    assert sub.no_packet(0.4)


@SHARDS
def test_resubscribe_replaces_and_resends_retained(start_broker, shards):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("resub", 2, shards)
    pub = raw.connected(broker.port, pub_id)
    raw.publish_and_confirm(pub, "rs/t", "kept", qos=2, retain=True)
    time.sleep(0.1)
    sub = raw.subscribed(broker.port, sub_id, ("rs/t", 2))
    assert raw.read_publishes(sub, 1)[0]["retain"] is True
    sub.expect(raw.PUBREL)
    # Same filter again at QoS 0: one subscription, replaced [MQTT-3.8.4-3],
    # and the retained message is sent again.
    sub.send(raw.subscribe(2, ("rs/t", 0)))
    assert list(sub.expect(raw.SUBACK).body[2:]) == [0]
    again = raw.read_publishes(sub, 1)[0]
    assert again["retain"] is True and again["qos"] == 0
    raw.publish_and_confirm(pub, "rs/t", "live", qos=2)
    live = raw.read_publishes(sub, 1)
    assert live[0]["qos"] == 0 and live[0]["payload"] == b"live"
    assert sub.no_packet(0.3)


@SHARDS
@VERSIONS
def test_unsubscribe_stops_delivery_at_once(start_broker, shards, version):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("unsub", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("u/a", 1), ("u/b", 1), ("u/c", 1), version=version)
    pub = raw.connected(broker.port, pub_id, version=version)
    sub.send(raw.unsubscribe(0x0102, "u/a", "u/b", "u/none"))
    unsuback = sub.expect(raw.UNSUBACK)
    # Same packet id [MQTT-3.10.4-4]; answered even for a filter it never had [MQTT-3.10.4-5].
    assert unsuback.flags == 0 and unsuback.body == b"\x01\x02"
    for topic in ("u/a", "u/b", "u/c"):
        raw.publish_and_confirm(pub, topic, topic, qos=1)
    got = raw.read_publishes(sub, 1)
    assert got[0]["topic"] == "u/c"  # [MQTT-3.10.4-2]
    assert sub.no_packet(0.4)


@SHARDS
def test_subscription_changes_apply_to_a_topic_already_routed(start_broker, shards):
    # The broker caches routes per topic name: a topic that has carried traffic
    # must see a new subscriber, an unsubscribe and a wildcard at once.
    broker = start_broker(shards=shards)
    a_id, b_id, pub_id = raw.spread_ids("hot", 3, shards)
    a = raw.subscribed(broker.port, a_id, ("hot/t", 1))
    pub = raw.connected(broker.port, pub_id)
    raw.publish_and_confirm(pub, "hot/t", "1", qos=1)
    assert raw.read_publishes(a, 1)[0]["payload"] == b"1"
    b = raw.subscribed(broker.port, b_id, ("hot/+", 1))
    raw.publish_and_confirm(pub, "hot/t", "2", qos=1)
    assert raw.read_publishes(a, 1)[0]["payload"] == b"2"
    assert raw.read_publishes(b, 1)[0]["payload"] == b"2"
    a.send(raw.unsubscribe(7, "hot/t"))
    a.expect(raw.UNSUBACK)
    raw.publish_and_confirm(pub, "hot/t", "3", qos=1)
    assert raw.read_publishes(b, 1)[0]["payload"] == b"3"
    assert a.no_packet(0.4)


@SHARDS
def test_one_burst_alternating_topics_reaches_each_topics_subscriber(start_broker, shards):
    # One write carries runs of one topic and topics that alternate (same
    # length, so only their bytes tell them apart): the route lookup tries
    # the last topic's cached route first, and it must never hand one topic
    # another's subscribers.
    broker = start_broker(shards=shards)
    a_id, b_id, c_id, pub_id = raw.spread_ids("alt", 4, shards)
    a = raw.subscribed(broker.port, a_id, ("alt/a", 0))
    b = raw.subscribed(broker.port, b_id, ("alt/b", 0))
    c = raw.subscribed(broker.port, c_id, ("alt/+", 0))
    pub = raw.connected(broker.port, pub_id)
    sequence = ["alt/a"] * 5 + ["alt/b", "alt/a"] * 20 + ["alt/b"] * 5 + ["alt/x"]
    pub.send(b"".join(raw.publish(t, f"{i}:{t}") for i, t in enumerate(sequence)))
    pub.send(raw.pingreq())
    pub.expect(raw.PINGRESP)

    def expected(topic):
        return [f"{i}:{t}".encode() for i, t in enumerate(sequence) if t == topic]

    assert [m["payload"] for m in raw.read_publishes(a, 25)] == expected("alt/a")
    assert [m["payload"] for m in raw.read_publishes(b, 25)] == expected("alt/b")
    assert [m["payload"] for m in raw.read_publishes(c, len(sequence))] == [
        f"{i}:{t}".encode() for i, t in enumerate(sequence)]
    assert a.no_packet(0.3) and b.no_packet(0.1)


@SHARDS
def test_unsubscribe_completes_inflight_qos1(start_broker, shards):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("unsub-inf", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("ui/t", 1))
    pub = raw.connected(broker.port, pub_id)
    raw.publish_and_confirm(pub, "ui/t", "m", qos=1)
    msg = raw.read_publishes(sub, 1, ack_them=False)[0]
    sub.send(raw.unsubscribe(3, "ui/t"))
    sub.expect(raw.UNSUBACK)
    # [MQTT-3.10.4-3]: the flow in progress can still be completed.
    sub.send(raw.ack(raw.PUBACK, msg["packet_id"]))
    sub.send(raw.pingreq())
    sub.expect(raw.PINGRESP)


@SHARDS
def test_subscribers_on_every_shard_get_a_publish(start_broker, shards):
    broker = start_broker(shards=shards)
    ids = raw.spread_ids("fan", 8, shards)
    subs = [raw.subscribed(broker.port, cid, ("fan/#", 1)) for cid in ids[:7]]
    pub = raw.connected(broker.port, ids[7])
    raw.publish_and_confirm(pub, "fan/out", "all", qos=1)
    for sub in subs:
        assert raw.read_publishes(sub, 1)[0]["payload"] == b"all"


@SHARDS
def test_mosquitto_sub_does_not_see_dollar_topics_through_hash(start_broker, shards):
    broker = start_broker(shards=shards)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "#",
                            "-C", "1", "-W", "5", "-v"], stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    for topic, message in (("$SYS/broker/x", "hidden"), ("visible/x", "seen")):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", topic,
                        "-m", message], check=True, timeout=10)
    out, _ = sub.communicate(timeout=15)
    assert out.strip() == "visible/x seen"
