"""The Eclipse Paho MQTT 5 interoperability suite (interoperability/
client_test5.py in eclipse/paho.mqtt.testing), every test re-expressed in our
own code with python3-paho-mqtt 1.6 in MQTTv5 mode, against the real binary on
--shards 1 and --shards 4. Where the suite's client does something paho-mqtt
cannot (never ping, ignore incoming PUBLISH, send Topic Alias 0, read raw
packets, see a server DISCONNECT's exact reason code: paho 1.6 drops the
reason code of a 1- or 2-byte DISCONNECT) the raw v5 client stands in.

Test names, topics, payloads, property values and timings follow the suite;
MQTT5_CONFORMANCE.md lists what each asserts. Each test gets a fresh broker
(the suite shares one and runs in alphabetical order; its cross-test leftovers
are noted in that document). Unlike the suite, waits are bounded polls.

The suite assumes `test/nosubscribe` is refused and that Server Keep Alive is
60; BROKER_ARGS is the command line that gives that (one place to adapt).
"""
import threading
import time

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from mqtt5_wire import (MAXIMUM_PACKET_SIZE, RECEIVE_MAXIMUM, SESSION_EXPIRY, TOPIC_ALIAS,
                        USER_PROPERTY, WILL_DELAY, Client5, ack5, connected5,
                        connect5, flag, options, parse_ack, parse_publish, props, publish5)
from mqtt_raw import PUBACK, PUBLISH, PUBREC, PUBREL, disconnect

SHARDS = pytest.mark.parametrize("shards", [1, 4])

BROKER_ARGS = (flag("deny_subscribe", "test/nosubscribe"), flag("max_keepalive", 60))

TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
NOSUBSCRIBE = "test/nosubscribe"
TOPIC_PREFIX = "client_test5/"


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def publish_props(**values):
    p = Properties(PacketTypes.PUBLISH)
    for name, value in values.items():
        setattr(p, name, value)
    return p


def connect_props(**values):
    p = Properties(PacketTypes.CONNECT)
    for name, value in values.items():
        setattr(p, name, value)
    return p


class V5:
    """A paho-mqtt MQTTv5 client with what the suite's Callbacks record."""

    def __init__(self, port, client_id):
        self.port = port
        self.client = paho.Client(client_id, protocol=paho.MQTTv5)
        self.messages = []     # (topic, payload, qos, retain, properties)
        self.subscribeds = []  # (mid, [reason code values])
        self.connacks = []     # (flags, reason code value, properties)
        self.disconnects = []
        self.lock = threading.Lock()
        c = self.client
        c.on_message = self._on_message
        c.on_subscribe = lambda cl, ud, mid, codes, p: self.subscribeds.append(
            (mid, [code.value for code in codes]))
        c.on_connect = lambda cl, ud, flags, rc, p: self.connacks.append((flags, rc.value, p))
        c.on_disconnect = lambda cl, ud, rc, p=None: self.disconnects.append(rc)

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, message.payload, message.qos, message.retain,
                                  message.properties))

    def connect(self, clean_start=True, keepalive=60, properties=None, will=None):
        """Connects and waits for CONNACK; returns (flags, reason code, properties)."""
        self.connacks.clear()
        if will:
            self.client.will_set(*will)
        self.client.connect("127.0.0.1", self.port, keepalive=keepalive, clean_start=clean_start,
                            properties=properties)
        self.client.loop_start()
        assert wait_for(lambda: self.connacks), "no CONNACK"
        return self.connacks[-1]

    def subscribe(self, topic_options, properties=None):
        """topic_options: [(filter, SubscribeOptions)]; waits for SUBACK."""
        before = len(self.subscribeds)
        self.client.subscribe(topic_options, properties=properties)
        assert wait_for(lambda: len(self.subscribeds) > before), "no SUBACK"
        return self.subscribeds[-1][1]

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos, retain, properties)
        info.wait_for_publish(5)
        assert info.is_published()

    def disconnect(self, properties=None):
        self.client.disconnect(properties=properties)
        self.client.loop_stop()

    def clear(self):
        with self.lock:
            self.messages.clear()


@pytest.fixture
def suite(start_broker, request):
    """A broker as the suite wants it; yields a factory of V5 clients (stopped at the end)."""
    shards = request.node.callspec.params["shards"]
    broker = start_broker(*BROKER_ARGS, shards=shards)
    clients = []

    def make(client_id):
        c = V5(broker.port, client_id)
        clients.append(c)
        return c

    make.port = broker.port
    yield make
    for c in clients:
        c.client.loop_stop()
        try:
            c.client.disconnect()
        except Exception:
            pass


def sub(qos, **kw):
    return SubscribeOptions(qos=qos, **kw)


# ------------------------------------------------------------------------------- tests

@SHARDS
def test_assigned_clientid(suite, shards):
    """Empty client id, clean start: CONNACK Assigned Client Identifier,
    non-empty [MQTT-3.1.3-6, MQTT-3.1.3-7]."""
    client = Client5(suite.port)
    connack = client.connect5("", clean=True)
    assert connack["reason"] == 0
    assigned = connack["props"].get(0x12)
    assert assigned, connack


@SHARDS
def test_basic(suite, shards):
    """Connect twice; QoS 0/1/2 to own subscription (3 messages); a second
    CONNECT on one connection and a wrong protocol name are refused
    [MQTT-3.1.0-2, MQTT-3.1.2-1]."""
    a = suite("myclientid")
    a.connect()
    a.disconnect()
    _, rc, _ = a.connect()
    assert rc == 0
    a.subscribe([(TOPICS[0], sub(2))])
    for qos in range(3):
        a.publish(TOPICS[0], f"qos {qos}".encode(), qos)
    assert wait_for(lambda: len(a.messages) == 3, 3)
    time.sleep(0.3)
    assert len(a.messages) == 3
    a.disconnect()

    raw = Client5(suite.port)
    raw.connect5("myclientid")
    raw.send(connect5("myclientid"))
    assert raw.closed_by_broker(), "second CONNECT accepted"

    raw = Client5(suite.port)
    body = connect5("myclientid").replace(b"\x00\x04MQTT", b"\x00\x02hj")
    body = bytes([body[0], body[1] - 2]) + body[2:]
    raw.send(body)
    try:
        pkt = raw.read(3)
        assert pkt.type == 2 and pkt.body[1] != 0, f"wrong protocol name accepted: {pkt}"
    except (ConnectionError, TimeoutError, OSError):
        pass
    assert raw.closed_by_broker()


@SHARDS
def test_client_topic_alias(suite, shards):
    """Topic Alias 0 gets a DISCONNECT [MQTT-3.3.2-8]; with an advertised
    Topic Alias Maximum, alias 1 is set and used with an empty topic; aliases
    do not survive reconnection [MQTT-3.3.2-7] (DISCONNECT)."""
    raw = Client5(suite.port)
    raw.connect5("myclientid", clean=True)
    raw.send(publish5(TOPICS[0], b"topic alias 0", qos=1, packet_id=1,
                      properties=props((TOPIC_ALIAS, 0))))
    assert raw.expect_disconnect(2) is not None, "no DISCONNECT for topic alias 0"

    a = suite("myclientid")
    _, rc, cprops = a.connect(properties=connect_props(TopicAliasMaximum=0,
                                                       SessionExpiryInterval=99999))
    server_max = getattr(cprops, "TopicAliasMaximum", 0)
    assert server_max > 0, "shardmq must advertise a Topic Alias Maximum (issue 6)"
    a.subscribe([(TOPICS[0], sub(2))])
    a.publish(TOPICS[0], b"topic alias 1", 1, properties=publish_props(TopicAlias=1))
    assert wait_for(lambda: len(a.messages) == 1, 3), a.messages
    a.publish("", b"topic alias 2", 1, properties=publish_props(TopicAlias=1))
    assert wait_for(lambda: len(a.messages) == 2, 3), a.messages
    assert [m[0] for m in a.messages] == [TOPICS[0], TOPICS[0]]
    a.disconnect()

    raw, connack = connected5(suite.port, "myclientid", clean=False,
                              properties=props((SESSION_EXPIRY, 99999)))
    assert connack["session_present"]
    raw.publish(TOPICS[0], b"topic alias 3", qos=1, packet_id=1)
    assert raw.read_publish()["payload"] == b"topic alias 3"
    raw.send(publish5("", b"topic alias 4", qos=1, packet_id=2, properties=props((TOPIC_ALIAS, 1))))
    assert raw.expect_disconnect(2) is not None, "stale alias accepted after reconnect"


@SHARDS
def test_dollar_topics(suite, shards):
    """+/+ does not match $TopicA/B [MQTT-4.7.2-1]."""
    b = suite("myclientid2")
    b.connect(keepalive=0)
    b.subscribe([(WILDTOPICS[5], sub(2))])
    time.sleep(0.5)
    b.clear()
    b.publish("$" + TOPICS[1], b"", 1)
    time.sleep(0.5)
    assert b.messages == []


@SHARDS
def test_flow_control1(suite, shards):
    """Client Receive Maximum 2: two QoS 1 PUBLISH, then none within 0.5 s
    until one is acknowledged [MQTT-3.3.4-9]."""
    client, _ = connected5(suite.port, "myclientid",
                           properties=props((RECEIVE_MAXIMUM, 2), (SESSION_EXPIRY, 0)))
    assert client.subscribe(1, (TOPICS[0], options(2))) == [2]
    for i in range(1, 4):
        client.send(publish5(TOPICS[0], f"message {i}", qos=1, packet_id=i))
    publishes, acks = [], 0
    while len(publishes) < 2 or acks < 3:
        pkt = client.read(3)
        if pkt.type == PUBLISH:
            publishes.append(parse_publish(pkt))
            assert len(publishes) <= 2, "third PUBLISH beyond Receive Maximum 2"
        else:
            assert pkt.type == PUBACK, pkt
            acks += 1
    assert all(p["qos"] == 1 for p in publishes)
    assert client.no_packet(0.5), "a packet beyond Receive Maximum"
    client.send(ack5(PUBACK, publishes[0]["packet_id"]))
    third = parse_publish(client.expect(PUBLISH, 3))
    assert third["qos"] == 1
    client.send(ack5(PUBACK, publishes[1]["packet_id"]))
    client.send(ack5(PUBACK, third["packet_id"]))


@SHARDS
def test_flow_control2(suite, shards):
    """Receive Maximum + 1 QoS 2 PUBLISH with no PUBREL: DISCONNECT 147
    (0x93 Receive Maximum exceeded) [MQTT-3.3.4-7/-8]."""
    client, connack = connected5(suite.port, "myclientid")
    server_max = connack["props"].get(RECEIVE_MAXIMUM, 65535)
    assert server_max < 65534, "the suite's client cannot send Receive Maximum + 1 publishes"
    for i in range(1, server_max + 2):
        client.send(publish5(TOPICS[0], f"message {i}", qos=2, packet_id=i))
    assert client.expect_disconnect(10) == 0x93


@SHARDS
def test_keepalive(suite, shards):
    """Keep alive 5 and no traffic: the broker closes the connection after
    1.5 x 5 s and publishes the will [MQTT-3.1.2-22, MQTT-3.1.2-8]."""
    b = suite("myclientid2")
    b.connect(keepalive=0)
    b.subscribe([(TOPICS[4], sub(2))])
    a = Client5(suite.port, timeout=15)
    assert a.connect5("myclientid", keepalive=5,
                      will=(TOPICS[4], b"keepalive expiry", 2, False))["reason"] == 0
    assert wait_for(lambda: len(b.messages) == 1, 12), "no will after keep-alive timeout"
    assert b.messages[0][:2] == (TOPICS[4], b"keepalive expiry")
    time.sleep(0.5)
    assert len(b.messages) == 1


@SHARDS
def test_maximum_packet_size(suite, shards):
    """(1) If the server advertises a Maximum Packet Size below 65535, a packet
    that big gets DISCONNECT 0x95. (2) Client Maximum Packet Size 64: a 32-byte
    payload arrives, a 64-byte one is not sent to it [MQTT-3.1.2-24/25]."""
    client, connack = connected5(suite.port, "myclientid")
    server_max = connack["props"].get(MAXIMUM_PACKET_SIZE, 2 ** 28 - 1)
    if server_max < 65535:
        client.send(publish5(TOPICS[0], b"." * server_max))
        assert client.expect_disconnect(2) == 0x95

    a = suite("myclientid")
    a.connect(properties=connect_props(MaximumPacketSize=64))
    a.subscribe([(TOPICS[0], sub(2))])
    a.publish(TOPICS[0], b"." * 32, 0)
    assert wait_for(lambda: len(a.messages) == 1, 3)
    a.publish(TOPICS[0], b"." * 64, 1)
    time.sleep(1.5)
    assert len(a.messages) == 1, "a message larger than the client's Maximum Packet Size"
    assert a.client.is_connected()


@SHARDS
def test_offline_message_queueing(suite, shards):
    """Session Expiry 99999: QoS 1/2 (QoS 0 optionally) queued while offline."""
    a = suite("myclientid")
    a.connect(properties=connect_props(SessionExpiryInterval=99999))
    a.subscribe([(WILDTOPICS[5], sub(2))])
    a.disconnect()
    b = suite("myclientid2")
    b.connect()
    for qos in range(3):
        b.publish(TOPICS[qos + 1], f"qos {qos}".encode(), qos)
    b.disconnect()
    a.connect(clean_start=False, properties=connect_props(SessionExpiryInterval=99999))
    assert wait_for(lambda: len(a.messages) >= 2, 3)
    time.sleep(0.5)
    assert len(a.messages) in (2, 3), a.messages


@SHARDS
def test_overlapping_subscriptions(suite, shards):
    """TopicA/# QoS 2 and TopicA/+ QoS 1: one copy at QoS 2 (issue 6 requires
    the single copy; the suite also allows two)."""
    a = suite("myclientid")
    a.connect()
    a.subscribe([(WILDTOPICS[6], sub(2)), (WILDTOPICS[0], sub(1))])
    a.publish(TOPICS[3], b"overlapping topic filters", 2)
    assert wait_for(lambda: a.messages, 3)
    time.sleep(1)
    assert [m[2] for m in a.messages] == [2], a.messages


def check_three(messages, check):
    assert len(messages) == 3, messages
    for m in messages:
        check(m[4])
    assert sorted(m[2] for m in messages) == [0, 1, 2]


@SHARDS
def test_payload_format(suite, shards):
    """PayloadFormatIndicator 1 and ContentType "My name" on an empty payload
    are forwarded [MQTT-3.3.2-4, MQTT-3.3.2-20]."""
    a = suite("myclientid")
    a.connect()
    a.subscribe([(TOPICS[0], sub(2))])
    for qos in range(3):
        a.publish(TOPICS[0], b"", qos,
                  properties=publish_props(PayloadFormatIndicator=1, ContentType="My name"))
    assert wait_for(lambda: len(a.messages) == 3, 5)

    def check(p):
        assert getattr(p, "ContentType", None) == "My name", p
        assert getattr(p, "PayloadFormatIndicator", None) == 1, p
    check_three(a.messages, check)


@SHARDS
def test_publication_expiry(suite, shards):
    """Interval 1 messages expire while b is offline, interval 6 ones arrive
    with an interval below 6 [MQTT-3.3.2-5, MQTT-3.3.2-6]; DISCONNECT changes
    the session expiry to 999999999."""
    b = suite("myclientid2")
    b.connect(properties=connect_props(SessionExpiryInterval=99999))
    b.subscribe([(TOPICS[0], sub(2))])
    dprops = Properties(PacketTypes.DISCONNECT)
    dprops.SessionExpiryInterval = 999999999
    b.disconnect(properties=dprops)
    time.sleep(0.3)
    a = suite("myclientid")
    a.connect()
    a.publish(TOPICS[0], b"qos 1 - expire", 1, properties=publish_props(MessageExpiryInterval=1))
    a.publish(TOPICS[0], b"qos 2 - expire", 2, properties=publish_props(MessageExpiryInterval=1))
    a.publish(TOPICS[0], b"qos 1 - don't expire", 1,
              properties=publish_props(MessageExpiryInterval=6))
    a.publish(TOPICS[0], b"qos 2 - don't expire", 2,
              properties=publish_props(MessageExpiryInterval=6))
    time.sleep(3)
    b.connect(clean_start=False)
    assert wait_for(lambda: len(b.messages) >= 2, 4)
    time.sleep(1)
    assert len(b.messages) == 2, b.messages
    for m in b.messages:
        assert getattr(m[4], "MessageExpiryInterval", 99) < 6, m


@SHARDS
def test_redelivery_on_reconnect(suite, shards):
    """Unacknowledged QoS 1 and QoS 2 PUBLISH are resent when the session
    resumes [MQTT-4.4.0-1]."""
    b, _ = connected5(suite.port, "myclientid2", clean=False,
                      properties=props((SESSION_EXPIRY, 99999)))
    assert b.subscribe(1, (WILDTOPICS[6], options(2))) == [2]
    b.send(publish5(TOPICS[1], b"", qos=1, packet_id=2))
    b.send(publish5(TOPICS[3], b"", qos=2, packet_id=3))
    seen = set()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(seen) < 2:  # "paused": read, answer nothing
        try:
            pkt = b.read(0.2)
        except (TimeoutError, OSError):
            continue
        if pkt.type == PUBREC:
            b.send(ack5(PUBREL, parse_ack(pkt)[0]))
        elif pkt.type == PUBLISH:
            seen.add(parse_publish(pkt)["topic"])
    assert seen == {TOPICS[1], TOPICS[3]}
    b.send(disconnect(version=5))
    b.close()
    b, connack = connected5(suite.port, "myclientid2", clean=False,
                            properties=props((SESSION_EXPIRY, 99999)))
    assert connack["session_present"]
    again = b.read_publishes(2, timeout=3)
    assert sorted(m["topic"] for m in again) == sorted([TOPICS[1], TOPICS[3]])
    assert all(m["dup"] for m in again), again


@SHARDS
def test_request_response(suite, shards):
    """ResponseTopic and CorrelationData b"334" reach the responder unchanged
    [MQTT-3.3.2-15, MQTT-3.3.2-16]; the response reaches the requester; no
    local keeps each from its own message."""
    a = suite("myclientid")
    b = suite("myclientid2")
    a.connect()
    b.connect()
    a.subscribe([(TOPICS[0], sub(2, noLocal=True))])
    b.subscribe([(TOPICS[0], sub(2, noLocal=True))])
    a.publish(TOPICS[0], b"request", 1,
              properties=publish_props(ResponseTopic=TOPICS[0], CorrelationData=b"334"))
    assert wait_for(lambda: b.messages, 3)
    time.sleep(0.3)
    assert len(b.messages) == 1, b.messages
    p = b.messages[0][4]
    assert getattr(p, "ResponseTopic", None) == TOPICS[0], p
    assert getattr(p, "CorrelationData", None) == b"334", p
    reply = publish_props(CorrelationData=p.CorrelationData)
    b.publish(p.ResponseTopic, b"response", 1, properties=reply)
    assert wait_for(lambda: a.messages, 3)
    time.sleep(0.3)
    assert [m[1] for m in a.messages] == [b"response"]


USER_PROPS = [("a", "2"), ("c", "3")]


@SHARDS
def test_retained_message(suite, shards):
    """Retained messages keep their user properties [MQTT-3.3.2-17/-18]."""
    a = suite("myclientid")
    a.connect()
    for qos in range(3):
        a.publish(TOPICS[qos + 1], f"qos {qos}".encode(), qos, retain=True,
                  properties=publish_props(UserProperty=list(USER_PROPS)))
    a.subscribe([(WILDTOPICS[5], sub(2))])
    assert wait_for(lambda: len(a.messages) == 3, 3)

    def check(p):
        assert getattr(p, "UserProperty", None) in (USER_PROPS, USER_PROPS[::-1]), p
    check_three(a.messages, check)


@SHARDS
def test_server_keep_alive(suite, shards):
    """Keep alive 120 asked, Server Keep Alive 60 answered [MQTT-3.2.2-21]."""
    a = suite("myclientid")
    _, rc, p = a.connect(keepalive=120)
    assert rc == 0
    assert getattr(p, "ServerKeepAlive", None) == 60, p


@SHARDS
def test_server_topic_alias(suite, shards):
    """Client Topic Alias Maximum 1: first message topic + alias, next two
    alias + empty topic; with no maximum or 0: no alias [MQTT-3.3.2-11]."""
    a = suite("myclientid")
    a.connect(properties=connect_props(TopicAliasMaximum=1))
    a.subscribe([(TOPICS[0], sub(2))])
    for qos in range(3):
        a.publish(TOPICS[0], b"topic alias 1", qos)
    assert wait_for(lambda: len(a.messages) == 3, 3)
    a.disconnect()
    first, second, third = a.messages
    alias = getattr(first[4], "TopicAlias", 0)
    assert alias > 0 and first[0] == TOPICS[0], first
    for m in (second, third):
        assert getattr(m[4], "TopicAlias", None) == alias and m[0] == "", m

    for maximum in (None, 0):
        a.clear()
        a.connect(properties=connect_props() if maximum is None
                  else connect_props(TopicAliasMaximum=0))
        a.subscribe([(TOPICS[0], sub(2))])
        for qos in range(3):
            a.publish(TOPICS[0], b"topic alias 1", qos)
        assert wait_for(lambda: len(a.messages) == 3, 3)
        a.disconnect()
        for m in a.messages:
            assert not hasattr(m[4], "TopicAlias") and m[0] == TOPICS[0], m


@SHARDS
def test_session_expiry(suite, shards):
    """Session Expiry 0, 5 and 1-then-5-at-DISCONNECT, then 0 at DISCONNECT:
    session present as the suite expects [MQTT-3.1.2-23, MQTT-3.14.2]."""
    a = suite("myclientid")

    def connect(clean, expiry):
        flags, rc, _ = a.connect(clean_start=clean,
                                 properties=connect_props(SessionExpiryInterval=expiry))
        assert rc == 0
        return flags["session present"]

    assert not connect(True, 0)
    a.subscribe([(TOPICS[0], sub(2))])
    a.disconnect()
    assert not connect(False, 0)
    a.disconnect()
    assert not connect(True, 5)
    a.subscribe([(TOPICS[0], sub(2))])
    a.disconnect()
    time.sleep(2)
    assert connect(False, 5)
    a.disconnect()
    time.sleep(6)
    assert not connect(False, 5)
    a.disconnect()
    assert not connect(True, 1)
    a.subscribe([(TOPICS[0], sub(2))])
    dprops = Properties(PacketTypes.DISCONNECT)
    dprops.SessionExpiryInterval = 5
    a.disconnect(properties=dprops)
    time.sleep(3)
    assert connect(False, 1)
    dprops.SessionExpiryInterval = 0
    a.disconnect(properties=dprops)
    time.sleep(0.3)
    assert not connect(False, 1)
    a.disconnect()


@SHARDS
def test_shared_subscriptions(suite, shards):
    """$share/sharename/client_test5/x and TopicA by two clients: TopicA to
    both, client_test5/x to exactly one [MQTT-4.8.2]."""
    a = suite("myclientid")
    b = suite("myclientid2")
    shared = "$share/sharename/" + TOPIC_PREFIX + "x"
    for c in (a, b):
        _, rc, _ = c.connect()
        assert rc == 0
        assert c.subscribe([(shared, sub(2)), (TOPICS[0], sub(2))]) == [2, 2]
    b.publish(TOPICS[0], b"message 0", 0)
    assert wait_for(lambda: len(a.messages) + len(b.messages) >= 2, 2)
    time.sleep(0.5)
    assert (len(a.messages), len(b.messages)) == (1, 1)
    a.clear()
    b.clear()
    b.publish(TOPIC_PREFIX + "x", b"message 0", 0)
    wait_for(lambda: len(a.messages) + len(b.messages) >= 1, 2)
    time.sleep(1)
    assert len(a.messages) + len(b.messages) == 1


@SHARDS
def test_subscribe_failure(suite, shards):
    """test/nosubscribe is refused with SUBACK 0x80 (configuration)."""
    a = suite("myclientid")
    a.connect()
    assert a.subscribe([(NOSUBSCRIBE, sub(2))]) == [0x80]


@SHARDS
def test_subscribe_identifiers(suite, shards):
    """a: id 456789 on TopicA; b: id 2 on TopicA and id 3 on TopicA/#; b's
    own message: a gets one copy with 456789, b one copy with {2, 3}
    [MQTT-3.3.4-3]."""
    a = suite("myclientid")
    b = suite("myclientid2")
    a.connect()
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 456789
    a.subscribe([(TOPICS[0], sub(2))], properties=sp)
    b.connect()
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 2
    b.subscribe([(TOPICS[0], sub(2))], properties=sp)
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 3
    b.subscribe([(TOPICS[0] + "/#", sub(2))], properties=sp)
    b.publish(TOPICS[0], b"sub identifier test", 1)
    assert wait_for(lambda: a.messages and b.messages, 3)
    time.sleep(0.5)
    assert len(a.messages) == 1 and len(b.messages) == 1, (a.messages, b.messages)
    assert getattr(a.messages[0][4], "SubscriptionIdentifier", [None])[0] == 456789
    assert set(getattr(b.messages[0][4], "SubscriptionIdentifier", [])) == {2, 3}


@SHARDS
def test_subscribe_options(suite, shards):
    """No local [MQTT-3.8.3-3]; retain as published [MQTT-3.3.1-12/13]; retain
    handling 1 / 2 / 0 [MQTT-3.3.1-9/10/11]."""
    a = suite("myclientid")
    b = suite("myclientid2")
    a.connect()
    b.connect()
    a.subscribe([(TOPICS[0], sub(2, noLocal=True))])
    b.subscribe([(TOPICS[0], sub(2, noLocal=True))])
    a.publish(TOPICS[0], b"noLocal test", 1)
    assert wait_for(lambda: b.messages, 3)
    time.sleep(0.5)
    assert a.messages == [] and len(b.messages) == 1
    a.disconnect()
    b.disconnect()

    a.clear()
    a.connect()
    a.subscribe([(TOPICS[0], sub(2, retainAsPublished=True))])
    a.publish(TOPICS[0], b"retain as published false", 1, retain=False)
    a.publish(TOPICS[0], b"retain as published true", 1, retain=True)
    assert wait_for(lambda: len(a.messages) == 2, 3)
    time.sleep(0.3)
    assert [m[3] for m in a.messages] == [False, True]
    a.disconnect()

    a.clear()
    a.connect()
    for qos in range(3):
        a.publish(TOPICS[qos + 1], f"qos {qos}".encode(), qos, retain=True)
    a.subscribe([(WILDTOPICS[5], sub(2, retainHandling=1))])
    assert wait_for(lambda: len(a.messages) == 3, 3)
    assert sorted(m[2] for m in a.messages) == [0, 1, 2]
    a.clear()
    a.subscribe([(WILDTOPICS[5], sub(2, retainHandling=1))])
    time.sleep(1)
    assert a.messages == []
    a.disconnect()

    a.clear()
    a.connect()
    a.subscribe([(WILDTOPICS[5], sub(2, retainHandling=2))])
    a.subscribe([(WILDTOPICS[5], sub(2, retainHandling=2))])
    time.sleep(1)
    assert a.messages == []
    a.disconnect()

    a.clear()
    a.connect()
    for _ in range(2):
        a.subscribe([(WILDTOPICS[5], sub(2, retainHandling=0))])
        assert wait_for(lambda: len(a.messages) == 3, 3)
        time.sleep(0.3)
        assert sorted(m[2] for m in a.messages) == [0, 1, 2]
        a.clear()
    a.disconnect()


@SHARDS
def test_unsubscribe(suite, shards):
    """Three subscriptions, one removed: two of three messages arrive."""
    b = suite("myclientid2")
    b.connect()
    for t in TOPICS[:3]:
        b.subscribe([(t, sub(2))])
    done = threading.Event()
    b.client.on_unsubscribe = lambda *args: done.set()
    b.client.unsubscribe(TOPICS[0])
    assert done.wait(3)
    a = suite("myclientid")
    a.connect()
    a.publish(TOPICS[0], b"topic 0 - unsubscribed", 1)
    a.publish(TOPICS[1], b"topic 1", 1)
    a.publish(TOPICS[2], b"topic 2", 1)
    assert wait_for(lambda: len(b.messages) == 2, 3)
    time.sleep(0.5)
    assert sorted(m[0] for m in b.messages) == sorted([TOPICS[1], TOPICS[2]])


@SHARDS
def test_user_properties(suite, shards):
    """User properties ("a","2"),("c","3") forwarded on QoS 0/1/2
    [MQTT-3.3.2-17, MQTT-3.3.2-18]."""
    a = suite("myclientid")
    a.connect()
    a.subscribe([(TOPICS[0], sub(2))])
    for qos in range(3):
        a.publish(TOPICS[0], b"", qos, properties=publish_props(UserProperty=list(USER_PROPS)))
    assert wait_for(lambda: len(a.messages) == 3, 5)

    def check(p):
        assert getattr(p, "UserProperty", None) in (USER_PROPS, USER_PROPS[::-1]), p
    check_three(a.messages, check)


@SHARDS
@pytest.mark.parametrize("will_delay,session_expiry,expected", [(3, 5, 4), (5, 0, 1), (5, 2, 3)])
def test_will_delay(suite, shards, will_delay, session_expiry, expected):
    """The will goes at the earlier of the will delay and session expiry
    [MQTT-3.1.3-9, MQTT-3.1.2-8]: delay 3 / expiry 5 -> 4 +- 1 s; delay 5 /
    expiry 0 -> 1 +- 1 s; delay 5 / expiry 2 -> 3 +- 1 s (the suite's
    bounds)."""
    b = suite("myclientid2")
    a = Client5(suite.port)
    connack = a.connect5("myclientid", properties=props((SESSION_EXPIRY, session_expiry)),
                         will=(TOPICS[0], b"test_will_delay will message", 0, False),
                         will_properties=props((WILL_DELAY, will_delay)))
    assert connack["reason"] == 0 and not connack["session_present"]
    b.connect()
    b.subscribe([(TOPICS[0], sub(2))])
    a.sock.shutdown(2)
    a.close()
    start = time.monotonic()
    assert wait_for(lambda: b.messages, expected + 2), "no will"
    duration = time.monotonic() - start
    assert abs(duration - expected) <= 1, f"will after {duration:.2f} s, expected {expected} +- 1"
    assert b.messages[0][:2] == (TOPICS[0], b"test_will_delay will message")


@SHARDS
def test_will_message(suite, shards):
    """Keep alive 2, no pings: the will (with will properties user properties
    ("a","2"),("c","3"), in order) is published [MQTT-3.1.3-10, MQTT-3.3.2-18]."""
    a = Client5(suite.port)
    assert a.connect5("myclientid", keepalive=2, will=(TOPICS[2], b"will message", 2, False),
                      will_properties=props((WILL_DELAY, 0), *[(USER_PROPERTY, p)
                                                               for p in USER_PROPS]))["reason"] == 0
    b = suite("myclientid2")
    b.connect(clean_start=False)
    b.subscribe([(TOPICS[2], sub(2))])
    assert wait_for(lambda: b.messages, 10), "no will after keep-alive timeout"
    time.sleep(0.3)
    assert len(b.messages) == 1
    assert getattr(b.messages[0][4], "UserProperty", None) == USER_PROPS


@SHARDS
def test_zero_length_clientid(suite, shards):
    """A 5.0 client may send an empty client id with clean start 0 or 1 (the
    suite never asserts this; MQTT 5.0 allows it, 3.1.3.1)."""
    for clean in (False, True):
        client = Client5(suite.port)
        connack = client.connect5("", clean=clean)
        assert connack["reason"] == 0, connack
        client.send(disconnect(version=5))
        client.close()
