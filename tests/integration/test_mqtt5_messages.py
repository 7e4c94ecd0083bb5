"""MQTT 5.0 message features of issue 6, against the real binary, checked on
the wire with the raw v5 client (mqtt5_wire) and, where a real library shows
what a user sees, with MQTT.js (protocolVersion 5):

message expiry, topic aliases in both directions, user properties / payload
format / content type / response topic / correlation data forwarded
unchanged, request response information, maximum packet size both ways,
receive maximum both ways, maximum QoS, retain available, and the CONNACK
capability properties.

Every test runs on --shards 1 and --shards 4; publisher and subscriber ids
are chosen on different home shards when there are several. Broker flags come
from mqtt5_wire.FLAGS (one place to rename them).
"""
import json
import pathlib
import subprocess
import time

import pytest

import mqtt_raw
from mqtt5_wire import (CONTENT_TYPE, CORRELATION_DATA, MAXIMUM_PACKET_SIZE, MAXIMUM_QOS,
                        MESSAGE_EXPIRY, PAYLOAD_FORMAT, RECEIVE_MAXIMUM, REQUEST_RESPONSE_INFO,
                        RESPONSE_INFO, RESPONSE_TOPIC, RETAIN_AVAILABLE, SESSION_EXPIRY,
                        SHARED_AVAILABLE, SUBSCRIPTION_ID_AVAILABLE, TOPIC_ALIAS,
                        TOPIC_ALIAS_MAXIMUM, USER_PROPERTY, WILDCARD_AVAILABLE, Client5, ack5,
                        connected5, flag, options, parse_ack, parse_publish, props, publish5)
from mqtt_raw import PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, spread_ids

SHARDS = pytest.mark.parametrize("shards", [1, 4])
HERE = pathlib.Path(__file__).resolve().parent

# Settings the tests start the broker with (see mqtt5_wire.FLAGS for the names).
TOPIC_ALIAS_MAX = 10
BROKER_RECEIVE_MAX = 5
SMALL_PACKET_LIMIT = 1024


def pair(shards, prefix):
    """Two client ids on different home shards (when shards > 1)."""
    return spread_ids(prefix, 2, shards)


# ---------------------------------------------------------------- message expiry

@SHARDS
def test_expired_message_is_not_delivered_and_interval_is_reduced(start_broker, shards):
    """A message queued for an offline session: the one whose Message Expiry
    Interval passed is dropped [MQTT-3.3.2-5]; the other is delivered with the
    interval reduced by the time it waited [MQTT-3.3.2-6]."""
    broker = start_broker(shards=shards)
    sub_id, pub_id = pair(shards, "exp")
    sub, _ = connected5(broker.port, sub_id, clean=True,
                        properties=props((SESSION_EXPIRY, 300)))
    assert sub.subscribe(1, ("exp/t", options(1))) == [1]
    sub.send(mqtt_raw.disconnect(version=5))
    sub.close()

    pub, _ = connected5(broker.port, pub_id)
    pub.publish("exp/t", b"short", qos=1, packet_id=1, properties=props((MESSAGE_EXPIRY, 1)))
    pub.publish("exp/t", b"long", qos=1, packet_id=2, properties=props((MESSAGE_EXPIRY, 60)))
    time.sleep(2.5)

    sub, connack = connected5(broker.port, sub_id, clean=False,
                              properties=props((SESSION_EXPIRY, 300)))
    assert connack["session_present"]
    got = sub.read_publish()
    assert got["payload"] == b"long"
    interval = got["props"].get(MESSAGE_EXPIRY)
    assert interval is not None, got
    assert 1 <= interval <= 58, f"60 s interval after 2.5 s waiting forwarded as {interval}"
    assert sub.no_publish(1.0), "the expired message was delivered"


@SHARDS
def test_online_delivery_keeps_message_expiry(start_broker, shards):
    """A message forwarded at once still carries its Message Expiry Interval
    (at most the published value) [MQTT-3.3.2-6]; one without expiry carries
    none."""
    broker = start_broker(shards=shards)
    sub_id, pub_id = pair(shards, "expon")
    sub, _ = connected5(broker.port, sub_id)
    assert sub.subscribe(1, ("expon/t", options(1))) == [1]
    pub, _ = connected5(broker.port, pub_id)
    pub.publish("expon/t", b"a", qos=1, packet_id=1, properties=props((MESSAGE_EXPIRY, 30)))
    pub.publish("expon/t", b"b", qos=1, packet_id=2)
    first, second = sub.read_publishes(2)
    assert first["payload"] == b"a" and 28 <= first["props"].get(MESSAGE_EXPIRY, -1) <= 30, first
    assert second["payload"] == b"b" and MESSAGE_EXPIRY not in second["props"], second


@SHARDS
def test_retained_message_expires(start_broker, shards):
    """A retained message whose expiry passed is not sent to a new subscriber
    [MQTT-3.3.2-5]; a live one is sent with the remaining interval
    [MQTT-3.3.2-6]."""
    broker = start_broker(shards=shards)
    sub_id, pub_id = pair(shards, "expret")
    pub, _ = connected5(broker.port, pub_id)
    pub.publish("expret/short", b"s", qos=1, packet_id=1, retain=True,
                properties=props((MESSAGE_EXPIRY, 1)))
    pub.publish("expret/long", b"l", qos=1, packet_id=2, retain=True,
                properties=props((MESSAGE_EXPIRY, 100)))
    time.sleep(2.2)
    sub, _ = connected5(broker.port, sub_id)
    assert sub.subscribe(1, ("expret/#", options(1))) == [1]
    got = sub.read_publish()
    assert got["topic"] == "expret/long" and got["retain"], got
    assert 1 <= got["props"].get(MESSAGE_EXPIRY, -1) <= 98, got
    assert sub.no_publish(1.0), "expired retained message was sent"


# ---------------------------------------------------------------- topic aliases, client -> server

@SHARDS
def test_inbound_topic_alias_is_resolved(start_broker, shards):
    """CONNACK advertises our Topic Alias Maximum; a PUBLISH that sets an alias
    and later ones using it with an empty topic reach subscribers under the full
    topic; an alias may be remapped [MQTT-3.3.2-12] (Server accepts aliases
    1..its maximum)."""
    broker = start_broker(flag("topic_alias_maximum", TOPIC_ALIAS_MAX), shards=shards)
    sub_id, pub_id = pair(shards, "alias")
    sub, _ = connected5(broker.port, sub_id)
    assert sub.subscribe(1, ("alias/#", options(1))) == [1]
    pub, connack = connected5(broker.port, pub_id)
    assert connack["props"].get(TOPIC_ALIAS_MAXIMUM) == TOPIC_ALIAS_MAX, connack
    pub.publish("alias/a", b"1", qos=1, packet_id=1, properties=props((TOPIC_ALIAS, 1)))
    pub.publish("", b"2", qos=1, packet_id=2, properties=props((TOPIC_ALIAS, 1)))
    pub.publish("alias/b", b"3", qos=0, properties=props((TOPIC_ALIAS, 1)))        # remap
    pub.publish("", b"4", qos=1, packet_id=3, properties=props((TOPIC_ALIAS, 1)))
    pub.publish("alias/c", b"5", qos=1, packet_id=4, properties=props((TOPIC_ALIAS, TOPIC_ALIAS_MAX)))
    pub.publish("", b"6", qos=1, packet_id=5, properties=props((TOPIC_ALIAS, TOPIC_ALIAS_MAX)))
    got = [(m["topic"], m["payload"]) for m in sub.read_publishes(6)]
    assert got == [("alias/a", b"1"), ("alias/a", b"2"), ("alias/b", b"3"), ("alias/b", b"4"),
                   ("alias/c", b"5"), ("alias/c", b"6")]
    # The subscriber did not allow aliases, and the publisher's alias is not passed on.
    pub.publish("alias/a", b"7", qos=1, packet_id=6, properties=props((TOPIC_ALIAS, 2)))
    assert TOPIC_ALIAS not in sub.read_publish()["props"]


@SHARDS
@pytest.mark.parametrize("case", ["zero", "above_maximum", "unknown"])
def test_invalid_inbound_topic_alias_gets_disconnect_0x94(start_broker, shards, case):
    """Alias 0 [MQTT-3.3.2-8], an alias above the Topic Alias Maximum we sent
    [MQTT-3.3.2-9], or an empty topic with an alias never set on this
    connection: DISCONNECT 0x94 Topic Alias invalid (a protocol error; 0x82 is
    accepted for the unknown alias) and the connection closes."""
    broker = start_broker(flag("topic_alias_maximum", TOPIC_ALIAS_MAX), shards=shards)
    client, _ = connected5(broker.port, "badalias")
    if case == "zero":
        client.send(publish5("t/a", b"x", qos=1, packet_id=1, properties=props((TOPIC_ALIAS, 0))))
        allowed = {0x94}
    elif case == "above_maximum":
        client.send(publish5("t/a", b"x", qos=1, packet_id=1,
                             properties=props((TOPIC_ALIAS, TOPIC_ALIAS_MAX + 1))))
        allowed = {0x94}
    else:
        client.send(publish5("", b"x", qos=1, packet_id=1, properties=props((TOPIC_ALIAS, 3))))
        allowed = {0x94, 0x82}
    assert client.expect_disconnect() in allowed
    assert client.closed_by_broker()


@SHARDS
def test_topic_alias_refused_when_maximum_is_zero(start_broker, shards):
    """With --topic-alias-maximum=0 the CONNACK carries no Topic Alias Maximum
    (or 0) and any alias is invalid: DISCONNECT 0x94 [MQTT-3.2.2-17, MQTT-3.3.2-9]."""
    broker = start_broker(flag("topic_alias_maximum", 0), shards=shards)
    client, connack = connected5(broker.port, "noalias")
    assert connack["props"].get(TOPIC_ALIAS_MAXIMUM, 0) == 0, connack
    client.send(publish5("t/a", b"x", qos=0, properties=props((TOPIC_ALIAS, 1))))
    assert client.expect_disconnect() == 0x94


@SHARDS
def test_inbound_topic_aliases_do_not_survive_the_connection(start_broker, shards):
    """Alias mappings are per network connection [MQTT-3.3.2-7]: after
    reconnecting, a PUBLISH with an empty topic and the old alias is refused."""
    broker = start_broker(flag("topic_alias_maximum", TOPIC_ALIAS_MAX), shards=shards)
    client, _ = connected5(broker.port, "aliasreset", properties=props((SESSION_EXPIRY, 60)))
    client.publish("t/a", b"x", qos=1, packet_id=1, properties=props((TOPIC_ALIAS, 1)))
    client.send(mqtt_raw.disconnect(version=5))
    client.close()
    client, connack = connected5(broker.port, "aliasreset", clean=False,
                                 properties=props((SESSION_EXPIRY, 60)))
    client.send(publish5("", b"y", qos=1, packet_id=2, properties=props((TOPIC_ALIAS, 1))))
    assert client.expect_disconnect() in (0x94, 0x82)


@SHARDS
def test_aliased_publish_reaches_a_311_subscriber(start_broker, shards):
    """A 5.0 publisher using an alias; a 3.1.1 subscriber (no aliases in its
    protocol) gets the full topic name."""
    broker = start_broker(flag("topic_alias_maximum", TOPIC_ALIAS_MAX), shards=shards)
    sub_id, pub_id = pair(shards, "alias311")
    sub = mqtt_raw.subscribed(broker.port, sub_id, ("a311/t", 1))
    pub, _ = connected5(broker.port, pub_id)
    pub.publish("a311/t", b"1", qos=1, packet_id=1, properties=props((TOPIC_ALIAS, 4)))
    pub.publish("", b"2", qos=1, packet_id=2, properties=props((TOPIC_ALIAS, 4)))
    got = [(m["topic"], m["payload"]) for m in mqtt_raw.read_publishes(sub, 2)]
    assert got == [("a311/t", b"1"), ("a311/t", b"2")]


# ---------------------------------------------------------------- topic aliases, server -> client

def resolve_aliases(messages, maximum):
    """What a client does with aliases it receives; checks each is legal."""
    table, topics = {}, []
    for m in messages:
        alias = m["props"].get(TOPIC_ALIAS)
        if alias is None:
            assert m["topic"], m
            topics.append(m["topic"])
            continue
        assert 1 <= alias <= maximum, f"alias {alias} outside 1..{maximum} [MQTT-3.3.2-11]"
        if m["topic"]:
            table[alias] = m["topic"]
        else:
            assert alias in table, f"alias {alias} used before it was set"
        topics.append(table[alias])
    return topics


@SHARDS
def test_server_uses_topic_aliases_within_the_client_maximum(start_broker, shards):
    """The client allows 1 alias: the first PUBLISH to it carries topic and
    alias, the next ones the same alias and an empty topic (the Paho suite's
    test_server_topic_alias demands this); aliases stay within the client's
    maximum [MQTT-3.3.2-11]."""
    broker = start_broker(shards=shards)
    sub_id, pub_id = pair(shards, "salias")
    sub, _ = connected5(broker.port, sub_id, properties=props((TOPIC_ALIAS_MAXIMUM, 1)))
    assert sub.subscribe(1, ("salias/#", options(2))) == [2]
    pub, _ = connected5(broker.port, pub_id)
    for qos in (0, 1, 2):
        pub.publish("salias/t", f"q{qos}", qos=qos, packet_id=qos or None)
    got = sub.read_publishes(3)
    assert got[0]["topic"] == "salias/t" and got[0]["props"].get(TOPIC_ALIAS) == 1, got[0]
    for m in got[1:]:
        assert m["topic"] == "" and m["props"].get(TOPIC_ALIAS) == 1, m
    assert [m["payload"] for m in got] == [b"q0", b"q1", b"q2"]


@SHARDS
def test_server_aliases_many_topics_resolvable(start_broker, shards):
    """Client maximum 2, six topics in turn, twice over: every alias is in
    1..2 and the client can always resolve the topic it is given."""
    broker = start_broker(shards=shards)
    sub_id, pub_id = pair(shards, "salias2")
    sub, _ = connected5(broker.port, sub_id, properties=props((TOPIC_ALIAS_MAXIMUM, 2)))
    assert sub.subscribe(1, ("m/#", options(1))) == [1]
    pub, _ = connected5(broker.port, pub_id)
    sent = [f"m/{i % 6}" for i in range(24)]
    for n, topic in enumerate(sent, start=1):
        pub.publish(topic, b"x", qos=1, packet_id=n)
    got = sub.read_publishes(len(sent))
    assert resolve_aliases(got, 2) == sent
    assert any(TOPIC_ALIAS in m["props"] for m in got), "no alias used though the client allowed 2"


@SHARDS
def test_no_server_alias_when_client_sets_no_maximum(start_broker, shards):
    """Without a Topic Alias Maximum (or with 0) in CONNECT the server sends no
    Topic Alias [MQTT-3.3.2-11] (the client's default maximum is 0)."""
    broker = start_broker(shards=shards)
    a_id, b_id, pub_id = spread_ids("noalias", 3, shards)
    a, _ = connected5(broker.port, a_id)
    b, _ = connected5(broker.port, b_id, properties=props((TOPIC_ALIAS_MAXIMUM, 0)))
    for client in (a, b):
        assert client.subscribe(1, ("na/t", options(1))) == [1]
    pub, _ = connected5(broker.port, pub_id)
    for n in range(1, 4):
        pub.publish("na/t", b"x", qos=1, packet_id=n)
    for client in (a, b):
        for m in client.read_publishes(3):
            assert m["topic"] == "na/t" and TOPIC_ALIAS not in m["props"], m


def run_mqttjs(*args, timeout=30):
    result = subprocess.run(["node", str(HERE / "mqttjs_client.js"), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@SHARDS
def test_mqttjs_resolves_server_topic_aliases(start_broker, shards):
    """MQTT.js (protocolVersion 5, topicAliasMaximum 3) sees the right topic
    names for messages the broker sends with aliases."""
    broker = start_broker(shards=shards)
    sub = subprocess.Popen(["node", str(HERE / "mqttjs_client.js"), "--port", str(broker.port),
                            "--protocol-version", "5", "--subscribe", "js/#", "--qos", "1",
                            "--connect-properties", json.dumps({"topicAliasMaximum": 3}),
                            "--expect", "8", "--timeout", "15000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    pub, _ = connected5(broker.port, "jsaliaspub")
    sent = [f"js/{i % 4}" for i in range(8)]
    for n, topic in enumerate(sent, start=1):
        pub.publish(topic, f"m{n}", qos=1, packet_id=n)
    out, err = sub.communicate(timeout=30)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["why"] == "done", out + err
    assert [m["topic"] for m in report["received"]] == sent


# ---------------------------------------------------------------- properties forwarded unchanged

FORWARDED = [
    (PAYLOAD_FORMAT, 1),
    (CONTENT_TYPE, "application/json; charset=utf-8"),
    (RESPONSE_TOPIC, "reply/to/me"),
    (CORRELATION_DATA, b"\x00\x01corr\xff"),
    (USER_PROPERTY, ("a", "1")),
    (USER_PROPERTY, ("b", "x y")),
    (USER_PROPERTY, ("a", "2")),   # repeated name: kept, in order
    (USER_PROPERTY, ("ünï", "cödé")),
]


def application_props(received):
    """The properties a receiver sees minus those the broker sets per delivery."""
    return [(k, v) for k, v in received if k not in (TOPIC_ALIAS, MESSAGE_EXPIRY, 0x0B)]


@SHARDS
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_properties_forwarded_unchanged(start_broker, shards, qos):
    """Payload format indicator [MQTT-3.3.2-4], content type [MQTT-3.3.2-20],
    response topic [MQTT-3.3.2-15], correlation data [MQTT-3.3.2-16] and user
    properties, including a repeated name [MQTT-3.3.2-17], reach the subscriber
    unchanged and user properties in the same order [MQTT-3.3.2-18]."""
    broker = start_broker(shards=shards)
    sub_id, pub_id = pair(shards, f"fwd{qos}")
    sub, _ = connected5(broker.port, sub_id)
    assert sub.subscribe(1, ("fwd/t", options(2))) == [2]
    pub, _ = connected5(broker.port, pub_id)
    pub.publish("fwd/t", "{\"k\": 1}", qos=qos, packet_id=qos or None, properties=props(*FORWARDED))
    got = sub.read_publish()
    assert got["payload"] == b"{\"k\": 1}" and got["qos"] == qos
    assert application_props(got["props"]) == FORWARDED


@SHARDS
def test_retained_message_keeps_its_properties(start_broker, shards):
    """A retained message sent on SUBSCRIBE carries the properties it was
    published with [MQTT-3.3.2-4, -15, -16, -17, -18, -20]."""
    broker = start_broker(shards=shards)
    sub_id, pub_id = pair(shards, "fwdret")
    pub, _ = connected5(broker.port, pub_id)
    pub.publish("fwdret/t", b"r", qos=1, packet_id=1, retain=True, properties=props(*FORWARDED))
    sub, _ = connected5(broker.port, sub_id)
    assert sub.subscribe(1, ("fwdret/t", options(1))) == [1]
    got = sub.read_publish()
    assert got["retain"] and application_props(got["props"]) == FORWARDED


@SHARDS
def test_properties_reach_a_mqttjs_v5_subscriber(start_broker, shards):
    """MQTT.js (v5) sees user properties, content type, response topic and
    correlation data of a message from a raw 5.0 publisher."""
    broker = start_broker(shards=shards)
    sub = subprocess.Popen(["node", str(HERE / "mqttjs_client.js"), "--port", str(broker.port),
                            "--protocol-version", "5", "--subscribe", "jsprops/t", "--qos", "1",
                            "--expect", "1", "--timeout", "15000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    pub, _ = connected5(broker.port, "jspropspub")
    pub.publish("jsprops/t", b"hello", qos=1, packet_id=1, properties=props(
        (PAYLOAD_FORMAT, 1), (CONTENT_TYPE, "text/plain"), (RESPONSE_TOPIC, "r/t"),
        (CORRELATION_DATA, b"abc"), (USER_PROPERTY, ("k", "v"))))
    out, err = sub.communicate(timeout=30)
    report = json.loads(out.strip().splitlines()[-1])
    assert report["why"] == "done", out + err
    p = report["received"][0]["properties"]
    assert p["payloadFormatIndicator"] is True or p["payloadFormatIndicator"] == 1, p
    assert p["contentType"] == "text/plain" and p["responseTopic"] == "r/t", p
    assert p["correlationData"] == "abc", p
    assert p["userProperties"] == {"k": "v"}, p


@SHARDS
def test_properties_from_mqttjs_publisher_forwarded(start_broker, shards):
    """MQTT.js (v5) publishes with user properties and a response topic; a raw
    5.0 subscriber sees them unchanged."""
    broker = start_broker(shards=shards)
    sub, _ = connected5(broker.port, "jspubsub")
    assert sub.subscribe(1, ("jspub/t", options(1))) == [1]
    run_mqttjs("--port", broker.port, "--protocol-version", 5, "--qos", 1,
               "--publish", "jspub/t=hi", "--publish-properties",
               json.dumps({"userProperties": {"x": "1"}, "responseTopic": "back/here",
                           "contentType": "text/plain"}))
    got = sub.read_publish()
    assert got["payload"] == b"hi"
    p = got["props"]
    assert p.get(RESPONSE_TOPIC) == "back/here" and p.get(CONTENT_TYPE) == "text/plain", p
    assert p.all(USER_PROPERTY) == [("x", "1")], p


@SHARDS
def test_request_response_information(start_broker, shards):
    """With --response-information=PREFIX, a CONNECT with Request Response
    Information 1 gets a Response Information in CONNACK (starting with the
    prefix); with 0 or absent, none [MQTT-3.1.2-28]."""
    broker = start_broker(flag("response_information", "resp/"), shards=shards)
    client, connack = connected5(broker.port, "rri1", properties=props((REQUEST_RESPONSE_INFO, 1)))
    info = connack["props"].get(RESPONSE_INFO)
    assert info is not None and info.startswith("resp/"), connack
    client, connack = connected5(broker.port, "rri0", properties=props((REQUEST_RESPONSE_INFO, 0)))
    assert RESPONSE_INFO not in connack["props"], connack
    client, connack = connected5(broker.port, "rri-")
    assert RESPONSE_INFO not in connack["props"], connack


# ---------------------------------------------------------------- maximum packet size

@SHARDS
def test_server_maximum_packet_size_advertised_and_enforced(start_broker, shards):
    """With --max-packet-size=1024 the CONNACK says Maximum Packet Size 1024; a
    packet of exactly 1024 bytes is accepted, a bigger one gets DISCONNECT 0x95
    Packet too large and the connection closes (sections 3.2.2.3.6, 4.13)."""
    broker = start_broker(flag("max_packet_size", SMALL_PACKET_LIMIT), shards=shards)
    client, connack = connected5(broker.port, "mps")
    assert connack["props"].get(MAXIMUM_PACKET_SIZE) == SMALL_PACKET_LIMIT, connack
    topic = "mps/t"
    overhead = len(publish5(topic, b"", qos=1, packet_id=1))
    # The remaining-length varint grows by one byte past 127.
    fits = publish5(topic, b"." * (SMALL_PACKET_LIMIT - overhead - 1), qos=1, packet_id=1)
    assert len(fits) == SMALL_PACKET_LIMIT
    client.send(fits)
    assert parse_ack(client.expect(PUBACK))[0] == 1
    client.send(publish5(topic, b"." * SMALL_PACKET_LIMIT, qos=1, packet_id=2))
    assert client.expect_disconnect() == 0x95
    assert client.closed_by_broker()


@SHARDS
def test_default_maximum_packet_size_is_advertised(start_broker, shards):
    """The default limit (1 MiB today) is advertised too: without the property
    a client may assume no limit (section 3.2.2.3.6)."""
    broker = start_broker(shards=shards)
    _, connack = connected5(broker.port, "mpsdefault")
    assert connack["props"].get(MAXIMUM_PACKET_SIZE) == 1 << 20, connack


@SHARDS
def test_message_too_large_for_one_subscriber_is_dropped_for_it_only(start_broker, shards):
    """Subscriber A allows 100-byte packets, B has no limit: a 300-byte
    message reaches B only; A is not disconnected and still gets the next small
    message [MQTT-3.1.2-24, MQTT-3.1.2-25]. The publisher's PUBACK is normal."""
    broker = start_broker(shards=shards)
    a_id, b_id, pub_id = spread_ids("mpsout", 3, shards)
    a, _ = connected5(broker.port, a_id, properties=props((MAXIMUM_PACKET_SIZE, 100)))
    b, _ = connected5(broker.port, b_id)
    for client in (a, b):
        assert client.subscribe(1, ("big/t", options(1))) == [1]
    pub, _ = connected5(broker.port, pub_id)
    assert pub.publish("big/t", b"B" * 300, qos=1, packet_id=1) == 0
    pub.publish("big/t", b"small", qos=1, packet_id=2)
    got_b = b.read_publishes(2)
    assert [m["payload"] for m in got_b] == [b"B" * 300, b"small"]
    got_a = a.read_publish()
    assert got_a["payload"] == b"small" and got_a["size"] <= 100, got_a
    assert a.no_publish(0.5)


# ---------------------------------------------------------------- receive maximum

@SHARDS
def test_server_respects_client_receive_maximum_qos1(start_broker, shards):
    """Client Receive Maximum 2: never more than 2 unacknowledged QoS 1
    PUBLISH to it [MQTT-3.3.4-9]; each PUBACK lets exactly one more through,
    in order."""
    broker = start_broker(shards=shards)
    sub_id, pub_id = pair(shards, "rm")
    sub, _ = connected5(broker.port, sub_id, properties=props((RECEIVE_MAXIMUM, 2)))
    assert sub.subscribe(1, ("rm/t", options(1))) == [1]
    pub, _ = connected5(broker.port, pub_id)
    for n in range(1, 6):
        pub.publish("rm/t", f"m{n}", qos=1, packet_id=n)
    first = sub.read_publishes(2, ack=False)
    assert sub.no_publish(0.8), "a third QoS 1 PUBLISH before any PUBACK"
    got = list(first)
    for m in first:
        sub.send(ack5(PUBACK, m["packet_id"]))
    while len(got) < 5:
        batch = sub.read_publishes(min(2, 5 - len(got)), ack=False)
        got += batch
        assert sub.no_publish(0.3)
        for m in batch:
            sub.send(ack5(PUBACK, m["packet_id"]))
    assert [m["payload"] for m in got] == [f"m{n}".encode() for n in range(1, 6)]


@SHARDS
def test_pubrec_does_not_free_a_receive_maximum_slot(start_broker, shards):
    """Receive Maximum 1 with QoS 2: the slot is freed by PUBCOMP, not by a
    successful PUBREC [MQTT-3.3.4-9]."""
    broker = start_broker(shards=shards)
    sub_id, pub_id = pair(shards, "rm2")
    sub, _ = connected5(broker.port, sub_id, properties=props((RECEIVE_MAXIMUM, 1)))
    assert sub.subscribe(1, ("rm2/t", options(2))) == [2]
    pub, _ = connected5(broker.port, pub_id)
    pub.publish("rm2/t", b"one", qos=2, packet_id=1)
    pub.publish("rm2/t", b"two", qos=2, packet_id=2)
    first = parse_publish(sub.expect(PUBLISH))
    assert first["payload"] == b"one"
    sub.send(ack5(PUBREC, first["packet_id"]))
    pkt = sub.expect(PUBREL)
    assert sub.no_packet(0.7), "second QoS 2 PUBLISH before PUBCOMP"
    sub.send(ack5(PUBCOMP, parse_ack(pkt)[0]))
    second = parse_publish(sub.expect(PUBLISH))
    assert second["payload"] == b"two"


@SHARDS
def test_broker_receive_maximum_advertised_and_enforced(start_broker, shards):
    """--receive-maximum=5: CONNACK Receive Maximum 5; five QoS 2 PUBLISH
    without PUBREL are fine, a sixth gets DISCONNECT 0x93 Receive Maximum
    exceeded [MQTT-3.3.4-7/-8]."""
    broker = start_broker(flag("receive_maximum", BROKER_RECEIVE_MAX), shards=shards)
    client, connack = connected5(broker.port, "rmin")
    assert connack["props"].get(RECEIVE_MAXIMUM) == BROKER_RECEIVE_MAX, connack
    for n in range(1, BROKER_RECEIVE_MAX + 1):
        client.send(publish5("rmin/t", b"x", qos=2, packet_id=n))
        assert parse_ack(client.expect(PUBREC))[0] == n
    client.send(publish5("rmin/t", b"x", qos=2, packet_id=BROKER_RECEIVE_MAX + 1))
    assert client.expect_disconnect() == 0x93


@SHARDS
def test_broker_receive_maximum_counts_only_unfinished_flows(start_broker, shards):
    """Completed QoS 2 flows free their slot: 3 × Receive Maximum QoS 2
    publishes, each completed with PUBREL/PUBCOMP, never trip the limit."""
    broker = start_broker(flag("receive_maximum", BROKER_RECEIVE_MAX), shards=shards)
    client, _ = connected5(broker.port, "rmok")
    for n in range(1, 3 * BROKER_RECEIVE_MAX + 1):
        assert client.publish("rmok/t", b"x", qos=2, packet_id=n) < 0x80
    client.ping()


# ---------------------------------------------------------------- maximum QoS, retain available

@SHARDS
def test_maximum_qos_1(start_broker, shards):
    """--max-qos=1: CONNACK Maximum QoS 1 [MQTT-3.2.2-9]; SUBSCRIBE at QoS 2
    is granted QoS 1; a PUBLISH at QoS 2 gets DISCONNECT 0x9B QoS not
    supported [MQTT-3.2.2-11]."""
    broker = start_broker(flag("max_qos", 1), shards=shards)
    client, connack = connected5(broker.port, "mq1")
    assert connack["props"].get(MAXIMUM_QOS) == 1, connack
    sub, _ = connected5(broker.port, "mq1sub")
    assert sub.subscribe(1, ("mq/t", options(2))) == [1]
    assert client.publish("mq/t", b"ok", qos=1, packet_id=1) < 0x80
    assert sub.read_publish()["qos"] == 1
    client.send(publish5("mq/t", b"no", qos=2, packet_id=2))
    assert client.expect_disconnect() == 0x9B


@SHARDS
def test_maximum_qos_refuses_will_qos_above_it(start_broker, shards):
    """--max-qos=0: a CONNECT whose Will QoS is 1 is refused with CONNACK 0x9B
    [MQTT-3.2.2-12]."""
    broker = start_broker(flag("max_qos", 0), shards=shards)
    client = Client5(broker.port)
    connack = client.connect5("mq0will", will=("w/t", b"bye", 1, False))
    assert connack["reason"] == 0x9B, connack
    assert client.closed_by_broker()


@SHARDS
def test_retain_not_available(start_broker, shards):
    """--retain-available=false: CONNACK Retain Available 0; a retained
    PUBLISH gets DISCONNECT 0x9A Retain not supported [MQTT-3.2.2-14]; a will
    with Will Retain 1 is refused with CONNACK 0x9A [MQTT-3.2.2-13]."""
    broker = start_broker(flag("retain_available", False), shards=shards)
    client, connack = connected5(broker.port, "noret")
    assert connack["props"].get(RETAIN_AVAILABLE) == 0, connack
    client.send(publish5("nr/t", b"x", qos=0, retain=True))
    assert client.expect_disconnect() == 0x9A
    will_client = Client5(broker.port)
    connack = will_client.connect5("noretwill", will=("w/t", b"bye", 0, True))
    assert connack["reason"] == 0x9A, connack


@SHARDS
def test_connack_advertises_capabilities_truthfully(start_broker, shards):
    """By default every optional feature is available, so CONNACK either
    omits Maximum QoS / Retain / Wildcard / Subscription Identifier / Shared
    Subscription Available or sets them to 2 / 1 [MQTT-3.2.2-9 ...]; Topic
    Alias Maximum > 0 and a Receive Maximum below 65534 are advertised (the
    Paho suite needs both, see MQTT5_CONFORMANCE.md)."""
    broker = start_broker(shards=shards)
    _, connack = connected5(broker.port, "caps")
    p = connack["props"]
    assert p.get(MAXIMUM_QOS, 2) == 2, p
    for pid in (RETAIN_AVAILABLE, WILDCARD_AVAILABLE, SUBSCRIPTION_ID_AVAILABLE, SHARED_AVAILABLE):
        assert p.get(pid, 1) == 1, (hex(pid), p)
    assert p.get(TOPIC_ALIAS_MAXIMUM, 0) > 0, p
    assert 0 < p.get(RECEIVE_MAXIMUM, 65535) < 65534, p
