"""MQTT 5 connection lifecycle (MQTT 5.0 sections 3.1, 3.2, 3.14, 3.15, 4.11,
4.12): session expiry, will delay, server keep alive, redirect, enhanced
authentication, the CONNACK properties the broker advertises and the
DISCONNECT codes it sends, on 1 and 4 shards. Raw packets where the test must
see exact codes and properties; paho-mqtt (MQTTv5) and MQTT.js v5 where a
real client's view matters."""
import hashlib
import hmac
import json
import pathlib
import struct
import subprocess
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

import mqtt_raw as raw
from conftest import wait_until

HERE = pathlib.Path(__file__).resolve().parent
SHARDS = pytest.mark.parametrize("shards", [1, 4])
SECRET = "demo-secret"
METHOD = "shardmq-challenge"

# --- MQTT 5 property codec (independent of the broker's, like mqtt_raw) -----

BYTE, TWO, FOUR, VARINT, UTF8, BINARY, PAIR = range(7)
PROPERTY_TYPES = {
    0x01: BYTE, 0x02: FOUR, 0x03: UTF8, 0x08: UTF8, 0x09: BINARY, 0x0B: VARINT,
    0x11: FOUR, 0x12: UTF8, 0x13: TWO, 0x15: UTF8, 0x16: BINARY, 0x17: BYTE,
    0x18: FOUR, 0x19: BYTE, 0x1A: UTF8, 0x1C: UTF8, 0x1F: UTF8, 0x21: TWO, 0x22: TWO,
    0x23: TWO, 0x24: BYTE, 0x25: BYTE, 0x26: PAIR, 0x27: FOUR, 0x28: BYTE, 0x29: BYTE,
    0x2A: BYTE,
}
SESSION_EXPIRY, SERVER_KEEP_ALIVE, AUTH_METHOD, AUTH_DATA = 0x11, 0x13, 0x15, 0x16
REQUEST_PROBLEM_INFO, WILL_DELAY, REQUEST_RESPONSE_INFO, RESPONSE_INFO = 0x17, 0x18, 0x19, 0x1A
SERVER_REFERENCE, REASON_STRING, RECEIVE_MAXIMUM, MAXIMUM_QOS = 0x1C, 0x1F, 0x21, 0x24
RETAIN_AVAILABLE, USER_PROPERTY, MAXIMUM_PACKET_SIZE = 0x25, 0x26, 0x27
WILDCARD_AVAILABLE, SUBSCRIPTION_ID_AVAILABLE = 0x28, 0x29


def prop(pid, value):
    kind = PROPERTY_TYPES[pid]
    if kind == BYTE:
        return bytes([pid, value])
    if kind == TWO:
        return bytes([pid]) + struct.pack("!H", value)
    if kind == FOUR:
        return bytes([pid]) + struct.pack("!I", value)
    if kind == PAIR:
        return bytes([pid]) + raw.utf8(value[0]) + raw.utf8(value[1])
    return bytes([pid]) + raw.utf8(value)  # UTF8 and BINARY share the layout


def parse_props(data, pos=0):
    """Returns ({id: value}, end position); user properties as a list of pairs."""
    length, used = raw.read_varint(data, pos)
    pos += used
    end = pos + length
    out = {}
    while pos < end:
        pid = data[pos]
        pos += 1
        kind = PROPERTY_TYPES[pid]
        if kind == BYTE:
            value, pos = data[pos], pos + 1
        elif kind == TWO:
            value, pos = struct.unpack_from("!H", data, pos)[0], pos + 2
        elif kind == FOUR:
            value, pos = struct.unpack_from("!I", data, pos)[0], pos + 4
        elif kind == VARINT:
            value, used = raw.read_varint(data, pos)
            pos += used
        elif kind == PAIR:
            n = struct.unpack_from("!H", data, pos)[0]
            name = data[pos + 2:pos + 2 + n].decode()
            pos += 2 + n
            n = struct.unpack_from("!H", data, pos)[0]
            value = (name, data[pos + 2:pos + 2 + n].decode())
            pos += 2 + n
            out.setdefault(pid, []).append(value)
            continue
        else:
            n = struct.unpack_from("!H", data, pos)[0]
            value = bytes(data[pos + 2:pos + 2 + n])
            if kind == UTF8:
                value = value.decode()
            pos += 2 + n
        assert pid not in out, f"property {pid:#x} repeated"
        out[pid] = value
    return out, end


def connect5(client_id, clean=True, keepalive=60, props=b"", will=None, will_props=b""):
    """A v5 CONNECT; will = (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0
    payload = raw.utf8(client_id)
    if will:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += raw.props(will_props) + raw.utf8(topic) + raw.utf8(message)
    body = raw.utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive) + raw.props(props)
    return raw.packet(raw.CONNECT, 0, body + payload)


def connack5(client):
    """Reads CONNACK: (session present, reason code, properties)."""
    body = client.expect(raw.CONNACK).body
    props, _ = parse_props(body, 2)
    return body[0] & 1, body[1], props


def reason_and_props(pkt):
    """DISCONNECT / AUTH body: (reason code, properties); empty body = 0x00."""
    if not pkt.body:
        return 0, {}
    if len(pkt.body) == 1:
        return pkt.body[0], {}
    return pkt.body[0], parse_props(pkt.body, 1)[0]


def auth(reason, method=METHOD, data=None):
    body = prop(AUTH_METHOD, method)
    if data is not None:
        body += prop(AUTH_DATA, data)
    return raw.packet(raw.AUTH, 0, bytes([reason]) + raw.props(body))


def disconnect5(reason=0, props=b""):
    return raw.packet(raw.DISCONNECT, 0, bytes([reason]) + raw.props(props))


def open5(port, client_id, **kwargs):
    """A Client after a successful v5 CONNECT; returns (client, session present, props)."""
    client = raw.Client(port)
    client.send(connect5(client_id, **kwargs))
    present, code, props = connack5(client)
    assert code == 0, f"CONNACK {code:#x} {props}"
    return client, present, props


def subscribe5(client, *filters, packet_id=1):
    client.send(raw.subscribe(packet_id, *filters, version=5))
    suback = client.expect(raw.SUBACK)
    _, end = parse_props(suback.body, 2)
    assert list(suback.body[end:]) == [q for _, q in filters]


def publish5(client, topic, payload, qos=0, packet_id=1, retain=False):
    client.send(raw.publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain,
                            version=5))
    if qos == 1:
        client.expect(raw.PUBACK)
    else:
        client.send(raw.pingreq())
        client.expect(raw.PINGRESP)


def expect_disconnect(client, code, timeout=5.0):
    """Reads until DISCONNECT; asserts its code and that the broker closes."""
    pkt = client.read(timeout)
    while pkt.type == raw.PUBLISH:
        pkt = client.read(timeout)
    assert pkt.type == raw.DISCONNECT, pkt
    reason, props = reason_and_props(pkt)
    assert reason == code, f"DISCONNECT {reason:#x} {props}"
    assert client.closed_by_broker(3)
    return props


def watcher(broker, prefix, topic_filter="will/#"):
    """A v5 subscriber on another home shard than `prefix`0 when there are several."""
    owner_id, sub_id = raw.spread_ids(prefix, 2, broker.shards)
    sub, _, _ = open5(broker.port, sub_id)
    subscribe5(sub, (topic_filter, 1))
    return owner_id, sub


def read_will(sub, timeout):
    return raw.read_publishes(sub, 1, timeout=timeout, version=5)[0]


# --- Session Expiry Interval [MQTT-3.1.2-23], 3.14.2.2.2 --------------------


@SHARDS
def test_session_without_expiry_ends_at_disconnect(start_broker, shards):
    broker = start_broker(shards=shards)
    client, present, _ = open5(broker.port, "noexp", clean=False)
    assert present == 0
    subscribe5(client, ("ne/t", 1))
    client.send(disconnect5())
    assert client.closed_by_broker(3)
    again, present, _ = open5(broker.port, "noexp", clean=False)
    assert present == 0  # absent expiry = 0: the session ended with the connection


@SHARDS
def test_session_resumes_within_expiry_and_is_gone_after_it(start_broker, shards):
    broker = start_broker(shards=shards)
    sub_id, pub_id = raw.spread_ids("exp", 2, shards)
    expiry = prop(SESSION_EXPIRY, 1)
    sub, _, _ = open5(broker.port, sub_id, clean=False, props=expiry)
    subscribe5(sub, ("ex/t", 1))
    sub.close()
    pub, _, _ = open5(broker.port, pub_id)
    publish5(pub, "ex/t", b"kept", qos=1)
    sub, present, _ = open5(broker.port, sub_id, clean=False, props=expiry)
    assert present == 1
    assert raw.read_publishes(sub, 1, version=5)[0]["payload"] == b"kept"
    sub.close()
    time.sleep(2.0)  # well past the 1 s expiry
    publish5(pub, "ex/t", b"nobody", qos=1, packet_id=2)
    sub, present, _ = open5(broker.port, sub_id, clean=False, props=expiry)
    assert present == 0
    assert sub.no_packet(0.5)


@SHARDS
def test_max_session_expiry_caps_even_never_expiring_sessions(start_broker, shards):
    broker = start_broker("--max-session-expiry=1", shards=shards)
    # 0xFFFFFFFF asked, capped to 1 s: the cap is what CONNACK reports and
    # what the broker does.
    client, _, props = open5(broker.port, "cap", clean=False,
                             props=prop(SESSION_EXPIRY, 0xFFFFFFFF))
    assert props[SESSION_EXPIRY] == 1
    client.close()
    time.sleep(2.0)
    _, present, _ = open5(broker.port, "cap", clean=False, props=prop(SESSION_EXPIRY, 30))
    assert present == 0
    # Without a cap, "never" is granted as asked and not echoed.
    broker2 = start_broker(shards=shards)
    client, _, props = open5(broker2.port, "forever", clean=False,
                             props=prop(SESSION_EXPIRY, 0xFFFFFFFF))
    assert SESSION_EXPIRY not in props
    client.close()
    time.sleep(1.2)
    _, present, _ = open5(broker2.port, "forever", clean=False)
    assert present == 1


@SHARDS
def test_connack_echoes_session_expiry_only_when_changed(start_broker, shards):
    broker = start_broker("--max-session-expiry=10", shards=shards)
    _, _, props = open5(broker.port, "asks-less", props=prop(SESSION_EXPIRY, 5))
    assert SESSION_EXPIRY not in props
    _, _, props = open5(broker.port, "asks-more", props=prop(SESSION_EXPIRY, 100))
    assert props[SESSION_EXPIRY] == 10


@SHARDS
def test_disconnect_may_shorten_session_expiry(start_broker, shards):
    broker = start_broker(shards=shards)
    client, _, _ = open5(broker.port, "shorten", clean=False, props=prop(SESSION_EXPIRY, 60))
    client.send(disconnect5(0, prop(SESSION_EXPIRY, 0)))
    assert client.closed_by_broker(3)
    _, present, _ = open5(broker.port, "shorten", clean=False, props=prop(SESSION_EXPIRY, 60))
    assert present == 0


@SHARDS
def test_disconnect_may_not_set_expiry_after_zero(start_broker, shards):
    broker = start_broker(shards=shards)
    client, _, _ = open5(broker.port, "zero-then", clean=False)
    client.send(disconnect5(0, prop(SESSION_EXPIRY, 30)))
    props = expect_disconnect(client, 0x82)  # [MQTT-3.14.2-2]
    assert "Session Expiry" in props[REASON_STRING]
    _, present, _ = open5(broker.port, "zero-then", clean=False)
    assert present == 0


@SHARDS
def test_paho_v5_persistent_session_gets_queued_message(start_broker, shards):
    broker = start_broker(shards=shards)
    got, connected = [], []
    arrived = threading.Event()

    def on_connect(client, userdata, flags, reason, properties):
        connected.append(flags["session present"])

    def on_message(client, userdata, message):
        got.append(message.payload)
        arrived.set()

    expiry = Properties(PacketTypes.CONNECT)
    expiry.SessionExpiryInterval = 60
    sub = paho.Client(client_id="paho5-sub", protocol=paho.MQTTv5)
    sub.on_connect = on_connect
    sub.connect("127.0.0.1", broker.port, clean_start=False, properties=expiry)
    sub.loop_start()
    try:
        assert wait_until(lambda: connected, 5)
        result, mid = sub.subscribe("paho5/t", qos=1)
        time.sleep(0.3)
        sub.disconnect()
    finally:
        sub.loop_stop()
    pub_id = raw.spread_ids("paho5-pub", 1, shards)[0]
    pub, _, _ = open5(broker.port, pub_id)
    publish5(pub, "paho5/t", b"while away", qos=1)
    sub = paho.Client(client_id="paho5-sub", protocol=paho.MQTTv5)
    sub.on_connect = on_connect
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port, clean_start=False, properties=expiry)
    sub.loop_start()
    try:
        assert arrived.wait(5)
    finally:
        sub.disconnect()
        sub.loop_stop()
    assert connected == [0, 1]
    assert got == [b"while away"]


# --- Will Delay Interval [MQTT-3.1.2-8], [MQTT-3.1.3-9] ----------------------


@SHARDS
def test_will_waits_out_its_delay(start_broker, shards):
    broker = start_broker(shards=shards)
    owner_id, sub = watcher(broker, "wdelay")
    owner, _, _ = open5(broker.port, owner_id, props=prop(SESSION_EXPIRY, 60),
                        will=("will/d", b"late", 1, False), will_props=prop(WILL_DELAY, 1))
    owner.close()
    assert sub.no_packet(0.6)
    assert read_will(sub, 3)["payload"] == b"late"


@SHARDS
def test_will_is_cancelled_when_the_session_resumes_in_time(start_broker, shards):
    broker = start_broker(shards=shards)
    owner_id, sub = watcher(broker, "wcancel")
    owner, _, _ = open5(broker.port, owner_id, clean=False, props=prop(SESSION_EXPIRY, 60),
                        will=("will/c", b"never", 1, False), will_props=prop(WILL_DELAY, 1))
    owner.close()
    time.sleep(0.2)
    owner, present, _ = open5(broker.port, owner_id, clean=False,
                              props=prop(SESSION_EXPIRY, 60))
    assert present == 1
    assert sub.no_packet(1.8)


@SHARDS
def test_will_is_sent_when_the_session_ends_before_the_delay(start_broker, shards):
    broker = start_broker(shards=shards)
    owner_id, sub = watcher(broker, "wend")
    owner, _, _ = open5(broker.port, owner_id, props=prop(SESSION_EXPIRY, 1),
                        will=("will/e", b"at end", 0, False), will_props=prop(WILL_DELAY, 600))
    started = time.monotonic()
    owner.close()
    assert read_will(sub, 4)["payload"] == b"at end"
    assert time.monotonic() - started >= 0.8


@SHARDS
def test_will_without_session_expiry_goes_at_once(start_broker, shards):
    broker = start_broker(shards=shards)
    owner_id, sub = watcher(broker, "wnow")
    owner, _, _ = open5(broker.port, owner_id, will=("will/n", b"now", 1, False),
                        will_props=prop(WILL_DELAY, 600))
    owner.close()  # expiry 0: the session ends here, and so does the wait
    assert read_will(sub, 1.5)["payload"] == b"now"


@SHARDS
@pytest.mark.parametrize("clean_start, will_expected", [(True, True), (False, False)])
def test_takeover_and_delayed_will(start_broker, shards, clean_start, will_expected):
    broker = start_broker(shards=shards)
    owner_id, sub = watcher(broker, f"wtake{int(clean_start)}")
    first, _, _ = open5(broker.port, owner_id, props=prop(SESSION_EXPIRY, 60),
                        will=("will/t", b"taken", 1, False), will_props=prop(WILL_DELAY, 1))
    second, present, _ = open5(broker.port, owner_id, clean=clean_start,
                               props=prop(SESSION_EXPIRY, 60))
    expect_disconnect(first, 0x8E)  # [MQTT-3.1.4-3]
    assert present == (0 if clean_start else 1)
    if will_expected:
        # Clean Start ends the old session, and with it the will's delay.
        assert read_will(sub, 0.8)["payload"] == b"taken"
    else:
        assert sub.no_packet(1.8)


@SHARDS
def test_will_with_properties_is_published(start_broker, shards):
    broker = start_broker(shards=shards)
    owner_id, sub = watcher(broker, "wprops")
    will_props = (prop(0x01, 1) + prop(0x02, 300) + prop(0x03, "text/plain") +
                  prop(0x08, "reply/here") + prop(0x09, b"\x00corr") +
                  prop(USER_PROPERTY, ("k", "v")))
    owner, _, _ = open5(broker.port, owner_id, will=("will/p", b"with props", 1, False),
                        will_props=will_props)
    # Packets after CONNECT: the CONNECT's bytes are long gone when the will goes.
    publish5(owner, "other/topic", b"x" * 3000)
    owner.close()
    got = read_will(sub, 3)
    assert (got["topic"], got["payload"]) == ("will/p", b"with props")


def test_will_properties_reach_the_subscriber(start_broker):
    broker = start_broker(shards=1)
    owner_id, sub = watcher(broker, "wfwd")
    owner, _, _ = open5(broker.port, owner_id, will=("will/f", b"p", 0, False),
                        will_props=prop(0x03, "text/plain") + prop(USER_PROPERTY, ("k", "v")))
    owner.close()
    pkt = sub.expect(raw.PUBLISH, timeout=3)
    (length,) = struct.unpack_from("!H", pkt.body, 0)
    props, _ = parse_props(pkt.body, 2 + length)
    assert props.get(0x03) == "text/plain"
    assert props.get(USER_PROPERTY) == [("k", "v")]


# --- Server Keep Alive [MQTT-3.2.2-21, MQTT-3.2.2-22] ----------------------


@SHARDS
@pytest.mark.parametrize("asked, told", [(60, 2), (0, 2), (1, None)])
def test_server_keep_alive(start_broker, shards, asked, told):
    broker = start_broker("--max-keepalive=2", shards=shards)
    client, _, props = open5(broker.port, f"ka{asked}", keepalive=asked)
    assert props.get(SERVER_KEEP_ALIVE) == told
    limit = (told or asked) * 1.5
    started = time.monotonic()
    props = expect_disconnect(client, 0x8D, timeout=limit + 2)
    assert time.monotonic() - started >= limit - 0.2
    assert "keep-alive" in props[REASON_STRING]


@SHARDS
def test_mqtt311_keep_alive_is_not_capped(start_broker, shards):
    broker = start_broker("--max-keepalive=1", shards=shards)
    client = raw.connected(broker.port, "ka311", keepalive=60)
    # 3.1.1 cannot be told a shorter keep alive; holding it to one would cut a
    # healthy client.
    assert not client.closed_by_broker(2.5)


@SHARDS
def test_paho_v5_sees_server_keep_alive(start_broker, shards):
    broker = start_broker("--max-keepalive=5", shards=shards)
    seen = []
    done = threading.Event()

    def on_connect(client, userdata, flags, reason, properties):
        seen.append((reason.getName(), getattr(properties, "ServerKeepAlive", None)))
        done.set()

    client = paho.Client(client_id="paho5-ka", protocol=paho.MQTTv5)
    client.on_connect = on_connect
    client.connect("127.0.0.1", broker.port, keepalive=120)
    client.loop_start()
    try:
        assert done.wait(5)
    finally:
        client.disconnect()
        client.loop_stop()
    assert seen == [("Success", 5)]


# --- Server redirect (section 4.11) ------------------------------------------


@SHARDS
@pytest.mark.parametrize("kind, code", [("moved", 0x9D), ("use-another", 0x9C)])
def test_redirect_v5(start_broker, shards, kind, code):
    broker = start_broker(f"--redirect={kind}", "--server-reference=mqtt2.example:1884",
                          shards=shards)
    for client_id in ("r1", "r2", "r3"):
        client = raw.Client(broker.port)
        client.send(connect5(client_id))
        _, reason, props = connack5(client)
        assert reason == code
        assert props[SERVER_REFERENCE] == "mqtt2.example:1884"
        assert client.closed_by_broker(3)


@SHARDS
def test_redirect_v311_is_server_unavailable(start_broker, shards):
    broker = start_broker("--redirect=moved", "--server-reference=elsewhere", shards=shards)
    client = raw.Client(broker.port)
    assert client.connect("old", version=4) == b"\x00\x03"
    assert client.closed_by_broker(3)


@SHARDS
def test_paho_v5_is_told_the_server_moved(start_broker, shards):
    broker = start_broker("--redirect=moved", "--server-reference=other:1883", shards=shards)
    seen = []
    done = threading.Event()

    def on_connect(client, userdata, flags, reason, properties):
        seen.append((reason.value, getattr(properties, "ServerReference", None)))
        done.set()

    client = paho.Client(client_id="paho5-moved", protocol=paho.MQTTv5)
    client.on_connect = on_connect
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        assert done.wait(5)
    finally:
        client.loop_stop()
    assert seen == [(0x9D, "other:1883")]


# --- Enhanced authentication (section 4.12) ----------------------------------


def answer(nonce, secret=SECRET):
    return hmac.new(secret.encode(), nonce, hashlib.sha256).hexdigest()


def auth_connect(port, client_id, secret=SECRET, props=b"", **kwargs):
    """CONNECT with the demo method, answer the challenge; returns (client, CONNACK)."""
    client = raw.Client(port)
    client.send(connect5(client_id, props=prop(AUTH_METHOD, METHOD) + props, **kwargs))
    challenge = client.expect(raw.AUTH)
    reason, aprops = reason_and_props(challenge)
    assert reason == 0x18 and aprops[AUTH_METHOD] == METHOD
    assert len(aprops[AUTH_DATA]) == 16
    client.send(auth(0x18, data=answer(aprops[AUTH_DATA], secret).encode()))
    return client, connack5(client)


@SHARDS
def test_auth_method_without_authenticator_is_refused(start_broker, shards):
    broker = start_broker(shards=shards)
    client = raw.Client(broker.port)
    client.send(connect5("noauth", props=prop(AUTH_METHOD, METHOD)))
    assert connack5(client)[1] == 0x8C
    assert client.closed_by_broker(3)


@SHARDS
def test_unknown_auth_method_is_refused(start_broker, shards):
    broker = start_broker(f"--auth-method-demo={SECRET}", shards=shards)
    client = raw.Client(broker.port)
    client.send(connect5("unknown", props=prop(AUTH_METHOD, "SCRAM-SHA-1")))
    assert connack5(client)[1] == 0x8C
    assert client.closed_by_broker(3)


@SHARDS
def test_challenge_auth_succeeds_and_client_works(start_broker, shards):
    broker = start_broker(f"--auth-method-demo={SECRET}", shards=shards)
    for client_id in raw.spread_ids("authok", 3, shards):
        client, (present, reason, props) = auth_connect(broker.port, client_id)
        assert reason == 0 and props[AUTH_METHOD] == METHOD
        subscribe5(client, (f"a/{client_id}", 0))
        client.send(raw.publish(f"a/{client_id}", b"hello", qos=1, packet_id=7, version=5))
        got = {pkt.type: pkt for pkt in (client.read(), client.read())}
        assert got[raw.PUBACK].packet_id() == 7
        assert got[raw.PUBLISH].publish_fields(5)["payload"] == b"hello"


@SHARDS
@pytest.mark.parametrize("problem_info", [None, 0])
def test_challenge_auth_wrong_answer_is_not_authorized(start_broker, shards, problem_info):
    broker = start_broker(f"--auth-method-demo={SECRET}", shards=shards)
    extra = b"" if problem_info is None else prop(REQUEST_PROBLEM_INFO, problem_info)
    client, (_, reason, props) = auth_connect(broker.port, "authbad", secret="guess",
                                              props=extra)
    assert reason == 0x87
    # Reason String only when the client did not turn problem information off.
    assert (REASON_STRING in props) == (problem_info is None)
    assert client.closed_by_broker(3)


@SHARDS
@pytest.mark.parametrize("bad, why", [
    (raw.pingreq(), "packet other than AUTH"),
    (auth(0x18, method="other", data=b"x"), "method changed"),
    (auth(0x19, data=b"x"), "re-authenticate before CONNACK"),
])
def test_protocol_errors_during_connect_auth(start_broker, shards, bad, why):
    broker = start_broker(f"--auth-method-demo={SECRET}", shards=shards)
    client = raw.Client(broker.port)
    client.send(connect5("authproto", props=prop(AUTH_METHOD, METHOD)))
    client.expect(raw.AUTH)
    client.send(bad)
    # Nothing but CONNACK may come before CONNACK [MQTT-3.2.0-1].
    assert connack5(client)[1] == 0x82, why
    assert client.closed_by_broker(3)


@SHARDS
def test_auth_must_finish_within_connect_timeout(start_broker, shards):
    broker = start_broker(f"--auth-method-demo={SECRET}", "--connect-timeout-ms=500",
                          shards=shards)
    client = raw.Client(broker.port)
    client.send(connect5("slowauth", props=prop(AUTH_METHOD, METHOD)))
    client.expect(raw.AUTH)
    assert client.closed_by_broker(3)


@SHARDS
def test_reauthentication(start_broker, shards):
    broker = start_broker(f"--auth-method-demo={SECRET}", shards=shards)
    client, (_, reason, _) = auth_connect(broker.port, "reauth")
    assert reason == 0
    for secret, ok in ((SECRET, True), ("wrong", False)):
        client.send(auth(0x19))
        reason, props = reason_and_props(client.expect(raw.AUTH))
        assert reason == 0x18
        client.send(auth(0x18, data=answer(props[AUTH_DATA], secret).encode()))
        if ok:
            reason, props = reason_and_props(client.expect(raw.AUTH))
            assert reason == 0x00 and props[AUTH_METHOD] == METHOD
            client.send(raw.pingreq())
            client.expect(raw.PINGRESP)
        else:
            expect_disconnect(client, 0x87)  # [MQTT-4.12.1-2]


@SHARDS
@pytest.mark.parametrize("case", ["no-method-at-connect", "other-method", "continue-out-of-turn"])
def test_auth_protocol_errors_after_connack(start_broker, shards, case):
    broker = start_broker(f"--auth-method-demo={SECRET}", shards=shards)
    if case == "no-method-at-connect":
        client, _, _ = open5(broker.port, "plain")
        client.send(auth(0x19))
    else:
        client, (_, reason, _) = auth_connect(broker.port, "authed")
        assert reason == 0
        client.send(auth(0x19, method="other") if case == "other-method" else
                    auth(0x18, data=b"x"))
    expect_disconnect(client, 0x82)


# --- CONNACK properties and what they bind ------------------------------------


@SHARDS
def test_connack_advertises_the_broker(start_broker, shards):
    broker = start_broker("--max-packet-size=4096", shards=shards)
    _, _, props = open5(broker.port, "adv")
    assert props[RECEIVE_MAXIMUM] == 1024
    assert props[MAXIMUM_PACKET_SIZE] == 4096
    assert props[RETAIN_AVAILABLE] == 1
    assert props[WILDCARD_AVAILABLE] == 1
    assert props[SUBSCRIPTION_ID_AVAILABLE] == 1
    assert MAXIMUM_QOS not in props  # absent = 2
    assert RESPONSE_INFO not in props


@SHARDS
def test_max_qos_and_retain_unavailable(start_broker, shards):
    broker = start_broker("--max-qos=1", "--retain-available=false", shards=shards)
    client, _, props = open5(broker.port, "limited")
    assert props[MAXIMUM_QOS] == 1 and props[RETAIN_AVAILABLE] == 0
    publish5(client, "ok/t", b"q1", qos=1)
    client.send(raw.publish("no/t", b"q2", qos=2, packet_id=2, version=5))
    expect_disconnect(client, 0x9B)
    client, _, _ = open5(broker.port, "limited2")
    client.send(raw.publish("no/t", b"r", retain=True, version=5))
    expect_disconnect(client, 0x9A)
    # Wills the broker could not publish are refused at CONNECT [MQTT-3.2.2-12, -13].
    for will, code in ((("w/t", b"x", 2, False), 0x9B), (("w/t", b"x", 0, True), 0x9A)):
        client = raw.Client(broker.port)
        client.send(connect5("willcheck", will=will))
        assert connack5(client)[1] == code
    # 3.1.1 cannot be told; a QoS 2 PUBLISH closes the connection.
    old = raw.connected(broker.port, "old-client")
    old.send(raw.publish("no/t", b"q2", qos=2, packet_id=3))
    assert old.closed_by_broker(3)


@SHARDS
def test_receive_maximum_is_enforced(start_broker, shards):
    broker = start_broker("--receive-maximum=2", shards=shards)
    client, _, props = open5(broker.port, "recvmax")
    assert props[RECEIVE_MAXIMUM] == 2
    for packet_id in (1, 2):
        client.send(raw.publish("rm/t", b"x", qos=2, packet_id=packet_id, version=5))
        client.expect(raw.PUBREC)
    # A resend of an unreleased id is no new message.
    client.send(raw.publish("rm/t", b"x", qos=2, packet_id=2, dup=True, version=5))
    client.expect(raw.PUBREC)
    client.send(raw.publish("rm/t", b"x", qos=2, packet_id=3, version=5))
    expect_disconnect(client, 0x93)


@SHARDS
def test_response_information_only_when_asked(start_broker, shards):
    broker = start_broker("--response-information=replies/", shards=shards)
    _, _, props = open5(broker.port, "asker", props=prop(REQUEST_RESPONSE_INFO, 1))
    assert props[RESPONSE_INFO] == "replies/asker"
    _, _, props = open5(broker.port, "silent")
    assert RESPONSE_INFO not in props  # [MQTT-3.1.2-28]


@SHARDS
def test_mqttjs_v5_sees_connack_properties(start_broker, shards):
    broker = start_broker("--max-keepalive=10", "--max-session-expiry=30", "--max-qos=1",
                          "--response-information=r/", shards=shards)
    result = subprocess.run(
        ["node", str(HERE / "mqttjs_v5_connect.js"), "--port", str(broker.port),
         "--client-id", "js5", "--keepalive", "60", "--session-expiry", "3600",
         "--request-response-information", "true"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    connack = json.loads(result.stdout)
    assert connack["reasonCode"] == 0
    props = connack["properties"]
    assert props["serverKeepAlive"] == 10
    assert props["sessionExpiryInterval"] == 30
    assert props["maximumQoS"] == 1
    assert props["responseInformation"] == "r/js5"
    assert props["wildcardSubscriptionAvailable"] is True


@SHARDS
@pytest.mark.parametrize("secret, code", [(SECRET, 0x00), ("wrong", 0x87)])
def test_mqttjs_v5_challenge_auth(start_broker, shards, secret, code):
    broker = start_broker(f"--auth-method-demo={SECRET}", shards=shards)
    result = subprocess.run(
        ["node", str(HERE / "mqttjs_v5_connect.js"), "--port", str(broker.port),
         "--client-id", "js5auth", "--auth-secret", secret],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    connack = json.loads(result.stdout)
    assert connack["reasonCode"] == code
    if code == 0:
        assert connack["properties"]["authenticationMethod"] == METHOD


@SHARDS
def test_mqttjs_v5_is_redirected(start_broker, shards):
    broker = start_broker("--redirect=use-another", "--server-reference=backup:1883",
                          shards=shards)
    result = subprocess.run(
        ["node", str(HERE / "mqttjs_v5_connect.js"), "--port", str(broker.port),
         "--client-id", "js5r"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    connack = json.loads(result.stdout)
    assert connack["reasonCode"] == 0x9C
    assert connack["properties"]["serverReference"] == "backup:1883"


# --- Server-sent DISCONNECT codes ---------------------------------------------


@SHARDS
def test_protocol_error_disconnect_has_reason_string(start_broker, shards):
    broker = start_broker(shards=shards)
    client, _, _ = open5(broker.port, "twice")
    client.send(connect5("twice"))
    props = expect_disconnect(client, 0x82)
    assert "CONNECT" in props[REASON_STRING]


@SHARDS
def test_shutdown_disconnect(start_broker, shards):
    broker = start_broker(shards=shards)
    client, _, _ = open5(broker.port, "bye")
    broker.process.send_signal(2)
    expect_disconnect(client, 0x8B)
    assert broker.stop(send_signal=False) == 0
