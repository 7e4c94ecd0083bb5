"""MQTT 3.1 / 3.1.1 conformance: retained messages (3.1.1 section 3.3.1.3),
on 1 and 4 shards: stored per topic, replaced, deleted by an empty payload,
sent flagged RETAIN to new subscriptions (wildcards included), visible from
every shard."""
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

import mqtt_raw as raw

SHARDS = pytest.mark.parametrize("shards", [1, 4])
VERSIONS = pytest.mark.parametrize("version", [3, 4])


def settle():
    # Retained messages reach the other shards' copies through their mailboxes.
    time.sleep(0.1)


@SHARDS
@VERSIONS
def test_retained_stored_replaced_deleted(start_broker, shards, version):
    broker = start_broker(shards=shards)
    ids = raw.spread_ids("ret", 6, shards)
    pub = raw.connected(broker.port, ids[0], version=version)
    raw.publish_and_confirm(pub, "r/a", "first", qos=1, retain=True)
    raw.publish_and_confirm(pub, "r/a", "second", qos=1, retain=True)  # replaces
    raw.publish_and_confirm(pub, "r/b", "bee", qos=0, retain=True)
    settle()
    # Every shard answers from its own copy.
    for cid in ids[1:4]:
        sub = raw.subscribed(broker.port, cid, ("r/+", 1), version=version)
        got = sorted((m["topic"], m["payload"], m["retain"], m["qos"])
                     for m in raw.read_publishes(sub, 2))
        # [MQTT-3.3.1-5, MQTT-3.3.1-6, MQTT-3.3.1-8]
        assert got == [("r/a", b"second", True, 1), ("r/b", b"bee", True, 0)]
        assert sub.no_packet(0.2)
    # An empty retained payload deletes [MQTT-3.3.1-10, MQTT-3.3.1-11].
    raw.publish_and_confirm(pub, "r/a", b"", qos=0, retain=True)
    settle()
    sub = raw.subscribed(broker.port, ids[4], ("r/#", 1), version=version)
    got = raw.read_publishes(sub, 1)
    assert [(m["topic"], m["payload"]) for m in got] == [("r/b", b"bee")]
    assert sub.no_packet(0.3)


@SHARDS
def test_live_delivery_clears_retain_flag(start_broker, shards):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("rlive", 2, shards)
    sub = raw.subscribed(broker.port, sub_id, ("rl/t", 1))
    pub = raw.connected(broker.port, pub_id)
    raw.publish_and_confirm(pub, "rl/t", "now", qos=1, retain=True)
    got = raw.read_publishes(sub, 1)[0]
    assert got["retain"] is False  # [MQTT-3.3.1-9]
    # ...but it was stored.
    late = raw.subscribed(broker.port, "rlive-late", ("rl/t", 1))
    assert raw.read_publishes(late, 1)[0]["retain"] is True


@SHARDS
def test_retained_qos_is_min_of_stored_and_granted(start_broker, shards):
    broker = start_broker(shards=shards)
    pub = raw.connected(broker.port, "rq-pub")
    for qos in (0, 1, 2):
        raw.publish_and_confirm(pub, f"rq/{qos}", f"q{qos}", qos=qos, retain=True, packet_id=9)
    settle()
    for granted in (0, 1, 2):
        sub = raw.subscribed(broker.port, f"rq-sub-{granted}", ("rq/#", granted))
        got = raw.read_publishes(sub, 3)
        assert sorted((m["topic"], m["qos"]) for m in got) == [
            (f"rq/{q}", min(q, granted)) for q in (0, 1, 2)]


@SHARDS
def test_retained_on_dollar_topic_not_sent_to_hash(start_broker, shards):
    broker = start_broker(shards=shards)
    pub = raw.connected(broker.port, "rd-pub")
    raw.publish_and_confirm(pub, "$internal/x", "hidden", qos=1, retain=True)
    raw.publish_and_confirm(pub, "plain/x", "shown", qos=1, retain=True)
    settle()
    sub = raw.subscribed(broker.port, "rd-sub", ("#", 1))
    assert [m["topic"] for m in raw.read_publishes(sub, 1)] == ["plain/x"]
    assert sub.no_packet(0.3)
    explicit = raw.subscribed(broker.port, "rd-sub2", ("$internal/#", 1))
    assert [m["topic"] for m in raw.read_publishes(explicit, 1)] == ["$internal/x"]


@SHARDS
def test_many_retained_topics_from_publishers_on_every_shard(start_broker, shards):
    broker = start_broker(shards=shards)
    pubs = [raw.connected(broker.port, cid) for cid in raw.spread_ids("rmany", 4, shards)]
    for n in range(200):
        raw.publish_and_confirm(pubs[n % 4], f"many/{n}", f"v{n}", qos=1, retain=True,
                                packet_id=n + 1)
    settle()
    for cid in raw.spread_ids("rmany-sub", 4, shards):
        sub = raw.subscribed(broker.port, cid, ("many/+", 0))
        got = raw.read_publishes(sub, 200)
        assert sorted(m["topic"] for m in got) == sorted(f"many/{n}" for n in range(200))
        assert all(m["retain"] for m in got)


def test_more_retained_messages_than_the_queue_holds_all_arrive(start_broker):
    """A filter matching far more retained QoS 1 messages than a session's
    queue may hold: they are fed in as the subscriber acknowledges, none is
    dropped at the queue's bound."""
    broker = start_broker("--max-queued-messages=50", "--max-inflight=10", shards=2)
    pub = raw.connected(broker.port, "rbulk-pub")
    count = 3000
    for n in range(count):
        pub.send(raw.publish(f"bulk/{n}", f"v{n}", qos=1, retain=True, packet_id=n % 60000 + 1))
    for _ in range(count):
        pub.expect(raw.PUBACK)
    sub = raw.subscribed(broker.port, "rbulk-sub", ("bulk/+", 1))
    got = raw.read_publishes(sub, count, timeout=30)
    assert sorted(m["topic"] for m in got) == sorted(f"bulk/{n}" for n in range(count))
    assert all(m["retain"] and m["qos"] == 1 for m in got)
    # Live messages still flow once the backlog is through.
    raw.publish_and_confirm(pub, "bulk/live", "live", qos=1, packet_id=2)
    [live] = raw.read_publishes(sub, 1)
    assert live["topic"] == "bulk/live" and not live["retain"]


@SHARDS
@pytest.mark.parametrize("protocol", [paho.MQTTv31, paho.MQTTv311])
def test_paho_retained_messages(start_broker, shards, protocol):
    """Paho interoperability suite, test_retained_messages."""
    broker = start_broker(shards=shards)
    got = []
    client = paho.Client("paho-retained", protocol=protocol)
    client.on_message = lambda c, u, m: got.append((m.topic, m.payload, m.qos, m.retain))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    for topic, qos in (("TopicA/B", 0), ("Topic/C", 1), ("TopicA/C", 2)):
        client.publish(topic, f"qos {qos}", qos, retain=True).wait_for_publish()
    time.sleep(0.2)
    client.subscribe("+/+", 2)
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert sorted(got) == [("Topic/C", b"qos 1", 1, True), ("TopicA/B", b"qos 0", 0, True),
                           ("TopicA/C", b"qos 2", 2, True)]
    # Clear them, subscribe again: nothing comes.
    client.unsubscribe("+/+")
    time.sleep(0.2)
    got.clear()
    for topic in ("TopicA/B", "Topic/C", "TopicA/C"):
        client.publish(topic, b"", 1, retain=True).wait_for_publish()
    time.sleep(0.2)
    client.subscribe("+/+", 2)
    time.sleep(0.5)
    client.disconnect()
    client.loop_stop()
    assert got == []


def mqttjs(*args, timeout=20):
    import json
    import pathlib
    here = pathlib.Path(__file__).resolve().parent
    result = subprocess.run(["node", str(here / "mqttjs_client.js"), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, cwd=here)
    return json.loads(result.stdout.strip().splitlines()[-1])


@SHARDS
@pytest.mark.parametrize("protocol_version", [3, 4])
def test_mqttjs_retained(start_broker, shards, protocol_version):
    broker = start_broker(shards=shards)
    out = mqttjs("--port", broker.port, "--protocol-version", protocol_version, "--qos", 1,
                 "--retain", "true", "--publish", "js/ret=kept")
    assert out["why"] == "published"
    settle()
    for n in range(3):  # subscribers land on different shards
        out = mqttjs("--port", broker.port, "--protocol-version", protocol_version,
                     "--client-id", f"js-ret-{n}", "--subscribe", "js/#", "--qos", 1,
                     "--expect", 1, "--timeout", 10000)
        assert out["why"] == "done", out
        assert out["received"] == [{"topic": "js/ret", "payload": "kept", "qos": 1,
                                    "retain": True}]


@SHARDS
@pytest.mark.parametrize("protocol_version", [3, 4])
def test_mqttjs_persistent_session(start_broker, shards, protocol_version):
    broker = start_broker(shards=shards)
    common = ("--port", broker.port, "--protocol-version", protocol_version,
              "--client-id", "js-persist", "--clean", "false", "--qos", 2)
    out = mqttjs(*common, "--subscribe", "jp/#")
    assert out["why"] == "published" and out["sessionPresent"] is False
    pub = raw.connected(broker.port, "jp-pub")
    for n in range(3):
        raw.publish_and_confirm(pub, f"jp/{n}", f"m{n}", qos=1 + n % 2, packet_id=n + 1)
    out = mqttjs(*common, "--expect", 3, "--timeout", 10000)
    assert out["why"] == "done", out
    # MQTT.js hands a QoS 2 message over at PUBREL, so the order across QoS
    # levels is its own; the set is what the broker owes it.
    assert sorted((m["payload"], m["qos"]) for m in out["received"]) == [("m0", 1), ("m1", 2),
                                                                        ("m2", 1)]
