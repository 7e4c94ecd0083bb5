"""MQTT 3.1 / 3.1.1 conformance: the will message and keep-alive (3.1.1
sections 3.1.2.5-3.1.2.10, 3.12, 3.13), on 1 and 4 shards, with the will's
owner and its subscriber on different home shards."""
import socket
import threading
import time

import paho.mqtt.client as paho
import pytest

import mqtt_raw as raw

SHARDS = pytest.mark.parametrize("shards", [1, 4])
VERSIONS = pytest.mark.parametrize("version", [3, 4])


def will_setup(broker, prefix, will_qos=1, will_retain=False, version=4, keepalive=60,
               sub_qos=2):
    owner_id, sub_id = raw.spread_ids(prefix, 2, broker.shards)
    sub = raw.subscribed(broker.port, sub_id, ("will/#", sub_qos), version=version)
    owner = raw.connected(broker.port, owner_id, version=version, keepalive=keepalive,
                          will=(f"will/{owner_id}", b"gone", will_qos, will_retain))
    return owner, sub, owner_id


@SHARDS
@VERSIONS
@pytest.mark.parametrize("will_qos", [0, 1, 2])
def test_will_on_socket_close(start_broker, shards, version, will_qos):
    broker = start_broker(shards=shards)
    owner, sub, owner_id = will_setup(broker, "wclose", will_qos, version=version)
    owner.close()  # no DISCONNECT [MQTT-3.1.2-8]
    got = raw.read_publishes(sub, 1)[0]
    assert (got["topic"], got["payload"], got["qos"]) == (f"will/{owner_id}", b"gone", will_qos)
    assert got["retain"] is False


@SHARDS
def test_will_on_socket_reset(start_broker, shards):
    broker = start_broker(shards=shards)
    owner, sub, _ = will_setup(broker, "wreset")
    owner.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    owner.close()  # RST
    assert raw.read_publishes(sub, 1)[0]["payload"] == b"gone"


@SHARDS
@VERSIONS
def test_no_will_after_disconnect(start_broker, shards, version):
    broker = start_broker(shards=shards)
    owner, sub, _ = will_setup(broker, "wdisc", version=version)
    owner.send(raw.disconnect())
    assert owner.closed_by_broker(3)  # [MQTT-3.14.4-1]: the server closes too
    assert sub.no_packet(0.5)  # [MQTT-3.1.2-10], [MQTT-3.14.4-3]


@SHARDS
def test_will_on_protocol_error(start_broker, shards):
    broker = start_broker(shards=shards)
    owner, sub, _ = will_setup(broker, "wproto")
    owner.send(raw.packet(raw.PUBLISH, 0x06, raw.utf8("x") + b"\x00\x01"))  # QoS 3
    assert owner.closed_by_broker(3)
    assert raw.read_publishes(sub, 1)[0]["payload"] == b"gone"


@SHARDS
def test_will_on_takeover(start_broker, shards):
    broker = start_broker(shards=shards)
    owner, sub, owner_id = will_setup(broker, "wtake")
    raw.connected(broker.port, owner_id)
    assert owner.closed_by_broker(3)
    assert raw.read_publishes(sub, 1)[0]["payload"] == b"gone"


@SHARDS
@VERSIONS
def test_retained_will(start_broker, shards, version):
    broker = start_broker(shards=shards)
    owner, sub, owner_id = will_setup(broker, "wret", will_qos=1, will_retain=True,
                                      version=version)
    owner.close()
    live = raw.read_publishes(sub, 1)[0]
    assert live["retain"] is False  # delivered to an existing subscription
    late = raw.subscribed(broker.port, "wret-late", (f"will/{owner_id}", 1), version=version)
    got = raw.read_publishes(late, 1)[0]
    assert got["retain"] is True and got["payload"] == b"gone"  # [MQTT-3.1.2-17]


@SHARDS
@VERSIONS
def test_keepalive_timeout_closes_and_publishes_will(start_broker, shards, version):
    broker = start_broker(shards=shards)
    owner, sub, _ = will_setup(broker, "wka", version=version, keepalive=1)
    started = time.monotonic()
    assert owner.closed_by_broker(5)
    elapsed = time.monotonic() - started
    # [MQTT-3.1.2-24]: one and a half times the keep-alive (1.5 s), not much later.
    assert 1.3 < elapsed < 3.0, elapsed
    assert raw.read_publishes(sub, 1)[0]["payload"] == b"gone"


@SHARDS
def test_pingreq_keeps_the_connection_alive(start_broker, shards):
    broker = start_broker(shards=shards)
    c = raw.connected(broker.port, "pinger", keepalive=1)
    for _ in range(6):
        time.sleep(0.5)
        c.send(raw.pingreq())
        pkt = c.expect(raw.PINGRESP)  # [MQTT-3.12.4-1]
        assert pkt.flags == 0 and pkt.body == b""


@SHARDS
def test_any_packet_counts_for_keepalive(start_broker, shards):
    broker = start_broker(shards=shards)
    c = raw.connected(broker.port, "busy", keepalive=1)
    for n in range(6):
        time.sleep(0.5)
        raw.publish_and_confirm(c, "busy/t", "x", qos=1, packet_id=n + 1)


@SHARDS
def test_keepalive_zero_is_never_timed_out(start_broker, shards):
    broker = start_broker(shards=shards)
    c = raw.connected(broker.port, "forever", keepalive=0)
    assert not c.closed_by_broker(2.5)
    c.send(raw.pingreq())
    c.expect(raw.PINGRESP)


@SHARDS
def test_paho_will_message(start_broker, shards):
    """Paho interoperability suite, test_will_message: the will of a client
    whose socket dies reaches a paho subscriber."""
    broker = start_broker(shards=shards)
    got = []
    event = threading.Event()
    b = paho.Client("paho-will-sub", protocol=paho.MQTTv311)
    b.on_message = lambda c, u, m: (got.append((m.topic, m.payload, m.qos)), event.set())
    subscribed = threading.Event()
    b.on_subscribe = lambda *a: subscribed.set()
    b.connect("127.0.0.1", broker.port)
    b.loop_start()
    b.subscribe("Topic/C", 2)
    assert subscribed.wait(5)
    a = paho.Client("paho-will-owner", protocol=paho.MQTTv311)
    a.will_set("Topic/C", "client not disconnected", 0, False)
    a.connect("127.0.0.1", broker.port, keepalive=2)
    a.loop(0.5)
    a.socket().close()  # terminate without DISCONNECT
    assert event.wait(5)
    b.disconnect()
    b.loop_stop()
    assert got == [("Topic/C", b"client not disconnected", 0)]


@SHARDS
def test_paho_keepalive(start_broker, shards):
    """Paho interoperability suite, test_keepalive: a client that stops
    talking (keepalive 5 s in the suite; 2 s here) is closed and its will sent."""
    broker = start_broker(shards=shards)
    owner, sub, _ = will_setup(broker, "pka", keepalive=2)
    assert raw.read_publishes(sub, 1, timeout=6)[0]["payload"] == b"gone"
