"""Durable persistent sessions (issue 9): --data-dir with real clients and the
real daemon. A session's subscriptions, its queued and in-flight QoS 1/2
messages (with MQTT 5 properties and subscription identifiers), its QoS 2
state in both directions and a will waiting out its delay survive a restart
and a kill -9; clean sessions leave nothing behind; with sync, PUBACK waits
while a full disk keeps a persistent subscriber's copy from being stored;
the log is compacted; damage in a session record stops start-up and
--salvage rewrites the data directory without it. (The kill -9 crash loops
under load are in test_durable_sessions_crash.py.)"""
import glob
import json
import os
import struct
import subprocess
import time
import urllib.request

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import mqtt_raw as raw
from conftest import BINARY, fill_up, free_port, wait_until


def durable(data_dir, *more):
    return [f"--data-dir={data_dir}", *more]


def restart(start_broker, broker, data, *flags, kill=False, shards=1):
    """Stops `broker` (SIGTERM, or kill -9) and starts another on the same
    port and data directory."""
    port = broker.port
    if kill:
        broker.process.kill()
        broker.process.wait()
    else:
        assert broker.stop() == 0
    return start_broker(*durable(data, *flags), shards=shards, listen=f"127.0.0.1:{port}")


def publish_qos(port, topic, payload, qos, client_id="publisher"):
    client = raw.connected(port, client_id)
    raw.publish_and_confirm(client, topic, payload, qos=qos)
    client.send(raw.disconnect())
    client.close()


def test_session_with_queued_messages_survives_restart_and_kill(start_broker, tmp_path):
    data = tmp_path / "data"
    broker = start_broker(*durable(data), shards=2)
    sub = raw.subscribed(broker.port, "keeper", ("q/#", 2), clean=False)
    sub.send(raw.disconnect())
    sub.close()
    for i in range(5):
        publish_qos(broker.port, "q/one", f"one-{i}", 1)
        publish_qos(broker.port, "q/two", f"two-{i}", 2)
    for kill in (False, True):
        broker = restart(start_broker, broker, data, kill=kill, shards=2)
    # Session present, the ten messages in their order, QoS kept.
    client = raw.Client(broker.port)
    connack = client.connect("keeper", clean=False)
    assert connack[0] == 1, "session present"
    got = raw.read_publishes(client, 10)
    assert [(g["topic"], g["payload"].decode(), g["qos"]) for g in got] == [
        (t, f"{n}-{i}", q) for i in range(5) for t, n, q in (("q/one", "one", 1),
                                                             ("q/two", "two", 2))]
    # The subscription works without subscribing again.
    publish_qos(broker.port, "q/after", "after", 1)
    [after] = raw.read_publishes(client, 1)
    assert after["payload"] == b"after"
    client.close()


def test_clean_sessions_leave_nothing_behind(start_broker, tmp_path):
    data = tmp_path / "data"
    broker = start_broker(*durable(data))
    client = raw.subscribed(broker.port, "transient", ("c/#", 1))
    client.close()
    broker = restart(start_broker, broker, data)
    assert "0 sessions" in broker.log()
    client = raw.Client(broker.port)
    assert client.connect("transient", clean=False)[0] == 0, "no session present"
    client.close()


def v5_client(port, client_id, expiry=3600, clean_start=False, will=None):
    got = []
    client = paho.Client(client_id=client_id, protocol=paho.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry
    if will is not None:
        topic, payload, delay = will
        will_props = Properties(PacketTypes.WILLMESSAGE)
        will_props.WillDelayInterval = delay
        client.will_set(topic, payload, qos=1, properties=will_props)
    client.on_message = lambda c, u, m: got.append(m)
    flags = {}
    client.on_connect = lambda c, u, f, rc, p=None: flags.update(f)
    client.connect("127.0.0.1", port, clean_start=clean_start, properties=props)
    client.loop_start()
    assert wait_until(lambda: flags, 5)
    return client, got, flags


def test_mqtt5_properties_and_subscription_ids_survive(start_broker, tmp_path):
    data = tmp_path / "data"
    broker = start_broker(*durable(data, "--durability=sync"), shards=2)
    client, _, _ = v5_client(broker.port, "v5-keeper")
    sub_props = Properties(PacketTypes.SUBSCRIBE)
    sub_props.SubscriptionIdentifier = 42
    result, mid = client.subscribe("p/#", qos=1, properties=sub_props)
    assert result == 0
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()

    pub = paho.Client(client_id="v5-pub", protocol=paho.MQTTv5)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "text/plain"
    props.ResponseTopic = "reply/here"
    props.CorrelationData = b"corr"
    props.UserProperty = [("k", "v")]
    props.MessageExpiryInterval = 3600
    pub.publish("p/x", b"with properties", qos=1, properties=props).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()

    broker = restart(start_broker, broker, data, "--durability=sync", kill=True, shards=2)
    client, got, flags = v5_client(broker.port, "v5-keeper")
    assert flags.get("session present") == 1
    assert wait_until(lambda: got, 5)
    message = got[0]
    assert message.payload == b"with properties"
    p = message.properties
    assert p.ContentType == "text/plain"
    assert p.ResponseTopic == "reply/here"
    assert p.CorrelationData == b"corr"
    assert p.UserProperty == [("k", "v")]
    assert p.SubscriptionIdentifier == [42]
    assert 3500 < p.MessageExpiryInterval <= 3600
    client.disconnect()
    client.loop_stop()


def test_qos2_inflight_resumes_with_pubrel_after_a_crash(start_broker, tmp_path):
    """The broker sent PUBLISH (QoS 2), the client answered PUBREC, the broker
    sent PUBREL (with sync: once "released" was on disk). After a kill -9 the
    broker must send PUBREL again, not the PUBLISH a client that completed
    its part would take for a new message."""
    data = tmp_path / "data"
    broker = start_broker(*durable(data, "--durability=sync"))
    sub = raw.subscribed(broker.port, "q2", ("x", 2), clean=False)
    publish_qos(broker.port, "x", "exactly once", 2)
    pkt = sub.expect(raw.PUBLISH)
    fields = pkt.publish_fields()
    assert fields["qos"] == 2
    sub.send(raw.ack(raw.PUBREC, fields["packet_id"]))
    assert sub.expect(raw.PUBREL).packet_id() == fields["packet_id"]
    broker = restart(start_broker, broker, data, "--durability=sync", kill=True)
    sub = raw.Client(broker.port)
    assert sub.connect("q2", clean=False)[0] == 1
    again = sub.read(5)
    assert again.type == raw.PUBREL, again
    assert again.packet_id() == fields["packet_id"]
    sub.send(raw.ack(raw.PUBCOMP, fields["packet_id"]))
    sub.no_packet(0.5)
    sub.close()


def test_inbound_qos2_id_survives_a_crash(start_broker, tmp_path):
    """A publisher's QoS 2 PUBLISH was acknowledged (PUBREC) and the broker
    crashed before PUBREL: resending it with DUP must not deliver it twice."""
    data = tmp_path / "data"
    broker = start_broker(*durable(data, "--durability=sync"))
    sub = raw.subscribed(broker.port, "watcher", ("y", 2), clean=False)
    pub = raw.connected(broker.port, "q2-pub", clean=False)
    pub.send(raw.publish("y", b"once", qos=2, packet_id=7))
    assert pub.expect(raw.PUBREC).packet_id() == 7
    [first] = raw.read_publishes(sub, 1)
    assert first["payload"] == b"once"
    broker = restart(start_broker, broker, data, "--durability=sync", kill=True)
    sub = raw.Client(broker.port)
    assert sub.connect("watcher", clean=False)[0] == 1
    pub = raw.Client(broker.port)
    assert pub.connect("q2-pub", clean=False)[0] == 1
    pub.send(raw.publish("y", b"once", qos=2, packet_id=7, dup=True))
    assert pub.expect(raw.PUBREC).packet_id() == 7
    pub.send(raw.ack(raw.PUBREL, 7))
    assert pub.expect(raw.PUBCOMP).packet_id() == 7
    # The watcher may get PUBREL for its own unfinished flow, never the
    # message again.
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        try:
            pkt = sub.read(max(0.05, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - a read timeout ends the wait
            break
        assert pkt.type != raw.PUBLISH or pkt.publish_fields()["dup"], pkt
        if pkt.type == raw.PUBREL:
            sub.send(raw.ack(raw.PUBCOMP, pkt.packet_id()))
    pub.close()
    sub.close()


def client_offline(http, client_id):
    """Whether the admin API lists `client_id`'s session as offline."""
    with urllib.request.urlopen(f"http://{http}/api/v1/clients/{client_id}", timeout=5) as r:
        return not json.loads(r.read())["connected"]


def session_expiry(seconds):
    """An MQTT 5 Session Expiry Interval property."""
    return bytes([0x11]) + struct.pack("!I", seconds)


def connect_v5(port, client_id, expiry=600, **kwargs):
    """A raw MQTT 5 client with Clean Start 0 and a Session Expiry Interval;
    returns it and its CONNACK body."""
    client = raw.Client(port)
    client.send(raw.connect(client_id, version=5, clean=False, properties=session_expiry(expiry),
                            **kwargs))
    return client, client.expect(raw.CONNACK).body


def connect_with_delayed_will(port, client_id, topic, delay, http=None):
    """An MQTT 5 client with Session Expiry 600 s and a will delayed `delay`
    seconds, whose connection then drops without DISCONNECT. With `http` (the
    admin API), returns once the broker has seen the connection end: a
    broker stopped before that drops the will (a stop is not the client's
    fault)."""
    client, connack = connect_v5(port, client_id, will=(topic, "gone", 1, False),
                                 will_properties=bytes([0x18]) + struct.pack("!I", delay))
    assert connack[1] == 0
    client.close()  # no DISCONNECT: the will is due after its delay
    if http is not None:
        assert wait_until(lambda: client_offline(http, client_id), 10)


def broker_with_will_watcher(start_broker, data):
    """A broker with the admin API and a persistent, offline subscriber to
    wills/# (wills reach its queue); returns the broker and the API address."""
    http = f"127.0.0.1:{free_port()}"
    broker = start_broker(*durable(data, f"--http-listen={http}"))
    watcher = raw.subscribed(broker.port, "will-watcher", ("wills/#", 1), clean=False)
    watcher.send(raw.disconnect())
    watcher.close()
    return broker, http


def down_for(start_broker, broker, data, seconds):
    """Stops `broker`, waits `seconds` with nothing running, starts another
    on the same port and data directory."""
    port = broker.port
    assert broker.stop() == 0
    time.sleep(seconds)
    return start_broker(*durable(data), listen=f"127.0.0.1:{port}")


def watcher_back(port):
    watcher = raw.Client(port)
    assert watcher.connect("will-watcher", clean=False)[0] == 1
    return watcher


def test_delayed_will_survives_a_restart(start_broker, tmp_path):
    data = tmp_path / "data"
    broker, http = broker_with_will_watcher(start_broker, data)
    connect_with_delayed_will(broker.port, "mortal", "wills/mortal", 3, http)
    broker = restart(start_broker, broker, data)
    watcher = watcher_back(broker.port)
    # Not before its delay has run out, counted from before the restart.
    [will] = raw.read_publishes(watcher, 1, timeout=8)
    assert (will["topic"], will["payload"]) == ("wills/mortal", b"gone")
    watcher.close()


def test_a_will_due_while_the_broker_was_down_goes_out_at_start(start_broker, tmp_path):
    data = tmp_path / "data"
    broker, http = broker_with_will_watcher(start_broker, data)
    connect_with_delayed_will(broker.port, "late", "wills/late", 1, http)
    broker = down_for(start_broker, broker, data, 1.5)  # the delay runs out meanwhile
    watcher = watcher_back(broker.port)
    [will] = raw.read_publishes(watcher, 1, timeout=3)
    assert (will["topic"], will["payload"]) == ("wills/late", b"gone")
    watcher.close()


def test_a_resumed_session_drops_its_delayed_will_for_good(start_broker, tmp_path):
    data = tmp_path / "data"
    broker, http = broker_with_will_watcher(start_broker, data)
    connect_with_delayed_will(broker.port, "back", "wills/back", 2, http)
    # Back before the delay: the will is dropped [MQTT-3.1.3-9] ...
    client, connack = connect_v5(broker.port, "back")
    assert connack[0] == 1
    client.send(raw.disconnect(version=5))
    client.close()
    # ... and stays dropped after a restart past its due time.
    broker = down_for(start_broker, broker, data, 2.5)
    watcher = watcher_back(broker.port)
    watcher.no_packet(1.0)
    watcher.close()


def test_session_expiry_counts_the_time_the_broker_was_down(start_broker, tmp_path):
    data = tmp_path / "data"
    broker = start_broker(*durable(data))
    for client_id, expiry in (("brief", 2), ("lasting", 600)):
        client, connack = connect_v5(broker.port, client_id, expiry=expiry)
        assert connack[1] == 0
        client.send(raw.disconnect(version=5))
        client.close()
    broker = down_for(start_broker, broker, data, 2.5)
    assert "1 sessions" in broker.log() and "dropped as expired: 0 retained, 1 sessions" in broker.log()
    for client_id, present in (("brief", 0), ("lasting", 1)):
        client, connack = connect_v5(broker.port, client_id)
        assert connack[0] == present, client_id
        client.close()


def metric(broker_http, name):
    text = urllib.request.urlopen(f"http://{broker_http}/metrics", timeout=5).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))




def test_compaction_keeps_the_log_near_the_live_state(start_broker, tmp_path):
    data = tmp_path / "data"
    http = f"127.0.0.1:{free_port()}"
    flags = ("--durability-compact-mb=1", f"--http-listen={http}")
    broker = start_broker(*durable(data, *flags), shards=2)
    sub = raw.subscribed(broker.port, "busy", ("busy/#", 1), clean=False)
    pub = raw.connected(broker.port, "busy-pub")
    # ~6 MB of log: each QoS 1 copy is a message, queued, sent and done.
    payload = b"p" * 200
    for i in range(20000):
        pub.send(raw.publish("busy/x", payload, qos=1, packet_id=i % 60000 + 1))
        if i % 100 == 99:
            for _ in range(100):
                pub.expect(raw.PUBACK)
            raw.read_publishes(sub, 100)
    assert wait_until(lambda: metric(http, "shardmq_store_snapshots_total") >= 2, 5)
    size = sum(os.path.getsize(f) for f in glob.glob(str(data / "shard-*" / "*.log")))
    assert size < 4 << 20, f"{size} bytes of log for an empty queue"
    assert metric(http, "shardmq_store_records_total") >= 80000
    # What the snapshots hold is enough: the session comes back whole.
    sub.send(raw.disconnect())
    sub.close()
    raw.publish_and_confirm(pub, "busy/after", b"queued", qos=1, packet_id=60001 % 65535)
    pub.close()
    # (SIGTERM: with async, a kill -9 may take the last acknowledgements'
    # records, and then messages come again; the crash tests cover that.)
    broker = restart(start_broker, broker, data, *flags, shards=2)
    sub = raw.Client(broker.port)
    assert sub.connect("busy", clean=False)[0] == 1
    [queued] = raw.read_publishes(sub, 1)
    assert queued["payload"] == b"queued"
    sub.close()


def test_sync_puback_waits_while_the_disk_is_full(start_broker, small_disk):
    data = small_disk / "data"
    broker = start_broker(*durable(data, "--durability=sync"))
    sub = raw.subscribed(broker.port, "stored-sub", ("full/#", 1), clean=False)
    sub.send(raw.disconnect())
    sub.close()
    filler = fill_up(small_disk)
    pub = raw.connected(broker.port, "full-pub")
    big = b"while full " * 1000  # larger than a page (see test_durable_retained)
    pub.send(raw.publish("full/x", big, qos=1, packet_id=1))
    pub.no_packet(1.5)  # no PUBACK: the subscriber's copy cannot be stored
    assert "No space left on device" in broker.log()
    # A message nobody stores is acknowledged meanwhile.
    raw.publish_and_confirm(pub, "elsewhere", b"not stored", qos=1, packet_id=2)
    filler.unlink()
    assert pub.expect(raw.PUBACK, timeout=5).packet_id() == 1
    pub.close()
    broker = restart(start_broker, broker, data, "--durability=sync", kill=True)
    sub = raw.Client(broker.port)
    assert sub.connect("stored-sub", clean=False)[0] == 1
    [got] = raw.read_publishes(sub, 1)
    assert got["payload"] == big
    sub.close()


def flip_byte_in_middle(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damage_stops_start_up_and_salvage_rewrites_it_away(start_broker, tmp_path):
    data = tmp_path / "data"
    broker = start_broker(*durable(data))
    sub = raw.subscribed(broker.port, "damaged", ("d/#", 1), clean=False)
    sub.send(raw.disconnect())
    sub.close()
    for i in range(40):
        publish_qos(broker.port, "d/x", f"m{i:02d}" + "." * 100, 1)
    assert broker.stop() == 0
    [segment] = [p for p in (data / "shard-0").iterdir() if p.suffix == ".log" and
                 p.stat().st_size > 4000]
    flip_byte_in_middle(segment)
    result = subprocess.run([str(BINARY), "--shards=1", "--listen=127.0.0.1:0",
                             f"--data-dir={data}"], capture_output=True, text=True, timeout=15)
    assert result.returncode != 0
    assert segment.name in result.stderr and "offset" in result.stderr, result.stderr
    broker = start_broker(*durable(data, "--salvage"))
    assert "rewrote" in broker.log() and "salvage skipped" in broker.log()
    assert broker.stop() == 0
    # The damage is gone: a start without --salvage works, the session with
    # what survived of its queue is there.
    broker = start_broker(*durable(data))
    sub = raw.Client(broker.port)
    assert sub.connect("damaged", clean=False)[0] == 1
    sub.close()
