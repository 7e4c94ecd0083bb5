"""MQTT 3.1 / 3.1.1 conformance: CONNECT and CONNACK (3.1.1 sections 3.1, 3.2,
4.8), on 1 and 4 shards. Exact bytes with the raw client; paho and
mosquitto_pub for what real clients do."""
import socket
import struct
import subprocess
import time

import paho.mqtt.client as paho
import pytest

import mqtt_raw as raw

SHARDS = pytest.mark.parametrize("shards", [1, 4])
VERSIONS = pytest.mark.parametrize("version", [3, 4])


def connect_body(name=b"MQTT", level=4, flags=0x02, keepalive=60, payload=b""):
    return raw.utf8(name) + bytes([level, flags]) + struct.pack("!H", keepalive) + payload


@SHARDS
@VERSIONS
def test_connack_accepts_and_session_present_is_zero_for_clean_session(start_broker, shards,
                                                                         version):
    broker = start_broker(shards=shards)
    c = raw.Client(broker.port)
    c.send(raw.connect("conn-ok", version=version))
    pkt = c.read()
    # The first packet from the server is CONNACK [MQTT-3.2.0-1], 2 bytes.
    assert pkt.type == raw.CONNACK and pkt.flags == 0
    assert pkt.body == b"\x00\x00"  # [MQTT-3.2.2-1]


@SHARDS
def test_first_packet_must_be_connect(start_broker, shards):
    broker = start_broker(shards=shards)
    for first in (raw.publish("a", "x"), raw.subscribe(1, ("a", 0)), raw.pingreq()):
        c = raw.Client(broker.port)
        c.send(first)
        # [MQTT-3.1.0-1]: closed, nothing sent back.
        assert c.closed_by_broker(3)
        assert c.buffer == b""


@SHARDS
@VERSIONS
def test_second_connect_is_a_protocol_violation(start_broker, shards, version):
    broker = start_broker(shards=shards)
    c = raw.connected(broker.port, "twice", version=version)
    c.send(raw.connect("twice", version=version))
    assert c.closed_by_broker(3)  # [MQTT-3.1.0-2]
    assert c.buffer == b""


@SHARDS
def test_wrong_protocol_name_closes_without_connack(start_broker, shards):
    broker = start_broker(shards=shards)
    for name, level in ((b"MQTT", 3), (b"MQIsdp", 4), (b"MQTX", 4)):
        c = raw.Client(broker.port)
        c.send(raw.packet(raw.CONNECT, 0, connect_body(name, level, payload=raw.utf8("n"))))
        # [MQTT-3.1.2-1]: the server may close at once; answering that the
        # name/level pair is unsupported (0x01) first is also allowed.
        assert c.closed_by_broker(3), name
        assert c.buffer in (b"", b"\x20\x02\x00\x01"), name


@SHARDS
@pytest.mark.parametrize("level", [0, 1, 2, 6])
def test_unsupported_protocol_level_gets_connack_0x01(start_broker, shards, level):
    broker = start_broker(shards=shards)
    c = raw.Client(broker.port)
    c.send(raw.packet(raw.CONNECT, 0, connect_body(b"MQTT", level, payload=raw.utf8("lvl"))))
    # [MQTT-3.1.2-2]: CONNACK 0x01, then the connection is closed. A level
    # above 5 is answered in the MQTT 5 form: 0x84 Unsupported Protocol Version.
    expected = b"\x00\x84\x00" if level > 5 else b"\x00\x01"
    assert c.expect(raw.CONNACK).body == expected
    assert c.closed_by_broker(3)


@SHARDS
def test_reserved_connect_flag_closes_without_connack(start_broker, shards):
    broker = start_broker(shards=shards)
    c = raw.Client(broker.port)
    c.send(raw.packet(raw.CONNECT, 0, connect_body(flags=0x03, payload=raw.utf8("resv"))))
    assert c.closed_by_broker(3)  # [MQTT-3.1.2-3]
    assert c.buffer == b""


@SHARDS
@pytest.mark.parametrize("flags,why", [
    (0x02 | 0x08, "will QoS without will flag [MQTT-3.1.2-13]"),
    (0x02 | 0x20, "will retain without will flag [MQTT-3.1.2-15]"),
    (0x02 | 0x04 | 0x18, "will QoS 3 [MQTT-3.1.2-14]"),
    (0x02 | 0x40, "password without user name [MQTT-3.1.2-22]"),
])
def test_inconsistent_connect_flags_close_without_connack(start_broker, shards, flags, why):
    broker = start_broker(shards=shards)
    payload = raw.utf8("flags")
    if flags & 0x04:
        payload += raw.utf8("will/t") + raw.utf8("w")
    if flags & 0x40:
        payload += raw.utf8("secret")
    c = raw.Client(broker.port)
    c.send(raw.packet(raw.CONNECT, 0, connect_body(flags=flags, payload=payload)))
    assert c.closed_by_broker(3), why
    assert c.buffer == b"", why


@SHARDS
@VERSIONS
def test_username_and_password_are_accepted(start_broker, shards, version):
    broker = start_broker(shards=shards)
    raw.connected(broker.port, "user-pw", version=version, username="u", password="p")
    raw.connected(broker.port, "user-only", version=version, username="u")


@SHARDS
@pytest.mark.parametrize("body", [
    b"\x00\x04MQTT\x04\x02\x00",             # truncated keep-alive
    b"\x00\x04MQTT\x04\x02\x00\x3c",         # no client id
    b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x05ab",  # client id shorter than its length
    b"\x00\x04MQTT\x04\x02\x00\x3c\x00\x02\xc3\x28",  # client id not UTF-8
])
def test_malformed_connect_gets_no_connack(start_broker, shards, body):
    broker = start_broker(shards=shards)
    c = raw.Client(broker.port)
    c.send(raw.packet(raw.CONNECT, 0, body))
    assert c.closed_by_broker(3)  # [MQTT-3.1.4-1]
    assert c.buffer == b""


@SHARDS
def test_empty_client_id(start_broker, shards):
    broker = start_broker(shards=shards)
    # 3.1.1, clean session 0: refused with 0x02 [MQTT-3.1.3-8], session present 0 [MQTT-3.2.2-4].
    c = raw.Client(broker.port)
    assert c.connect("", clean=False) == b"\x00\x02"
    assert c.closed_by_broker(3)
    # 3.1.1, clean session 1: accepted with an id the server assigns [MQTT-3.1.3-6].
    a = raw.connected(broker.port, "")
    b = raw.connected(broker.port, "")
    # Two of them are two clients: both stay connected and work.
    for client in (a, b):
        client.send(raw.pingreq())
        client.expect(raw.PINGRESP)
    # 3.1: a client id must have 1 to 23 characters.
    c = raw.Client(broker.port)
    assert c.connect("", version=3) == b"\x00\x02"


@SHARDS
def test_client_id_lengths(start_broker, shards):
    broker = start_broker(shards=shards)
    # 3.1: 23 characters are fine, 24 are refused with 0x02.
    raw.connected(broker.port, "a" * 23, version=3)
    c = raw.Client(broker.port)
    assert c.connect("b" * 24, version=3) == b"\x00\x02"
    assert c.closed_by_broker(3)
    # 3.1.1: the server may accept longer ids and any UTF-8 [MQTT-3.1.3-5]; shardmq does.
    raw.connected(broker.port, "c" * 200)
    raw.connected(broker.port, "ünïcødé-client")


@SHARDS
@VERSIONS
def test_takeover_closes_the_first_connection(start_broker, shards, version):
    broker = start_broker(shards=shards)
    for n in range(8):  # several ids, so on 4 shards some arrive away from home
        cid = f"take-{n}"
        first = raw.connected(broker.port, cid, version=version)
        second = raw.connected(broker.port, cid, version=version)
        assert first.closed_by_broker(3)  # [MQTT-3.1.4-2]
        second.send(raw.pingreq())
        second.expect(raw.PINGRESP)


@SHARDS
@VERSIONS
def test_session_present_flag(start_broker, shards, version):
    broker = start_broker(shards=shards)
    c = raw.Client(broker.port)
    assert c.connect("sp", version=version, clean=False) == b"\x00\x00"  # new session
    c.send(raw.disconnect())
    c.close()
    c = raw.Client(broker.port)
    # [MQTT-3.2.2-2]: 1 in 3.1.1; 3.1 has no such bit, the byte is reserved 0.
    expected = b"\x01\x00" if version == 4 else b"\x00\x00"
    assert c.connect("sp", version=version, clean=False) == expected
    c.send(raw.disconnect())
    c.close()
    c = raw.Client(broker.port)
    # Clean session 1 discards it [MQTT-3.2.2-1]; and then nothing is left.
    assert c.connect("sp", version=version, clean=True) == b"\x00\x00"
    c.send(raw.disconnect())
    c.close()
    c = raw.Client(broker.port)
    assert c.connect("sp", version=version, clean=False) == b"\x00\x00"


@SHARDS
def test_connect_timeout_closes_a_silent_socket(start_broker, shards):
    broker = start_broker("--connect-timeout-ms=300", shards=shards)
    c = raw.Client(broker.port)
    started = time.monotonic()
    assert c.closed_by_broker(5)
    assert 0.2 < time.monotonic() - started < 3
    # Half a CONNECT does not count either.
    c = raw.Client(broker.port)
    c.send(raw.connect("half")[:5])
    assert c.closed_by_broker(5)


@SHARDS
def test_connect_and_publish_in_one_write(start_broker, shards):
    broker = start_broker(shards=shards)
    sub = raw.subscribed(broker.port, "one-write-sub", ("ow/t", 1))
    pub = raw.Client(broker.port)
    pub.send(raw.connect("one-write-pub") + raw.publish("ow/t", "hi", qos=1, packet_id=3))
    assert pub.expect(raw.CONNACK).body == b"\x00\x00"
    assert pub.expect(raw.PUBACK).packet_id() == 3
    assert raw.read_publishes(sub, 1)[0]["payload"] == b"hi"


@SHARDS
def test_paho_zero_length_client_id(start_broker, shards):
    """Paho interoperability suite, test_zero_length_clientid."""
    broker = start_broker(shards=shards)
    results = []
    for clean in (False, True):
        client = paho.Client(client_id="", clean_session=clean, protocol=paho.MQTTv311) \
            if clean else None
        if client is None:
            # paho refuses clean_session=False with an empty id locally; use raw bytes.
            c = raw.Client(broker.port)
            results.append(c.connect("", clean=False)[1])
            continue
        done = []
        client.on_connect = lambda cl, ud, flags, rc: done.append(rc)
        client.connect("127.0.0.1", broker.port)
        deadline = time.monotonic() + 5
        while not done and time.monotonic() < deadline:
            client.loop(0.1)
        client.disconnect()
        results.append(done[0] if done else None)
    assert results == [2, 0]


@SHARDS
def test_mosquitto_pub_with_credentials(start_broker, shards):
    broker = start_broker(shards=shards)
    for version in ("mqttv31", "mqttv311"):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "x",
                        "-m", "y", "-u", "user", "-P", "pw", "-V", version, "-q", "1"],
                       check=True, timeout=10, capture_output=True)
