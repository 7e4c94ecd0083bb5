"""The Eclipse Paho interoperability suite's client tests (client_test.py:
basic, retained messages, offline message queueing, will message,
overlapping subscriptions, keepalive, redelivery on reconnect, zero-length
client id, $-topics, unsubscribe, subscribe failure), re-expressed with
python3-paho-mqtt against `shardmq --shards 4` (and 1), for MQTT 3.1.1 and,
where the test means something there, 3.1.

The suite expects the broker to refuse subscriptions to "test/nosubscribe",
which it configures as an ACL; shardmq is started with
--deny-subscribe=test/nosubscribe for that.
"""
import threading
import time

import paho.mqtt.client as paho
import pytest

SHARDS = pytest.mark.parametrize("shards", [1, 4])
PROTOCOLS = pytest.mark.parametrize("protocol", [paho.MQTTv31, paho.MQTTv311],
                                    ids=["v31", "v311"])

TOPICS = ("TopicA", "TopicA/B", "Topic/C", "TopicA/C", "/TopicA")
WILDTOPICS = ("TopicA/+", "+/C", "#", "/#", "/+", "+/+", "TopicA/#")
NOSUBSCRIBE = "test/nosubscribe"


class Callbacks:
    def __init__(self):
        self.messages = []
        self.subscribeds = []
        self.unsubscribeds = []
        self.connects = []
        self.lock = threading.Lock()

    def attach(self, client):
        client.on_message = self.on_message
        client.on_subscribe = self.on_subscribe
        client.on_unsubscribe = self.on_unsubscribe
        client.on_connect = self.on_connect

    def on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append((message.topic, message.payload, message.qos, message.retain))

    def on_subscribe(self, client, userdata, mid, granted_qos):
        self.subscribeds.append((mid, list(granted_qos)))

    def on_unsubscribe(self, client, userdata, mid):
        self.unsubscribeds.append(mid)

    def on_connect(self, client, userdata, flags, rc):
        self.connects.append((flags, rc))


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def suite(start_broker, request):
    """Starts the broker and yields a client factory; every client is stopped at the end."""
    shards = request.node.callspec.params["shards"]
    broker = start_broker(f"--deny-subscribe={NOSUBSCRIBE}", shards=shards)
    clients = []

    def make(client_id, protocol, clean_session=True, keepalive=60, will=None, start=True):
        callbacks = Callbacks()
        client = paho.Client(client_id, clean_session=clean_session, protocol=protocol)
        callbacks.attach(client)
        if will:
            client.will_set(*will)
        client.connect("127.0.0.1", broker.port, keepalive=keepalive)
        if start:
            client.loop_start()
            assert wait_for(lambda: callbacks.connects), "no CONNACK"
        clients.append(client)
        return client, callbacks

    make.broker = broker
    yield make
    for client in clients:
        client.loop_stop()


def subscribe(client, callbacks, topics_qos):
    count = len(callbacks.subscribeds)
    client.subscribe(topics_qos)
    assert wait_for(lambda: len(callbacks.subscribeds) > count), "no SUBACK"
    return callbacks.subscribeds[-1][1]


def clear_retained(make, protocol):
    client, callbacks = make("clean retained", protocol)
    subscribe(client, callbacks, [("#", 0)])
    time.sleep(0.3)
    for topic, payload, qos, retain in list(callbacks.messages):
        if retain:
            client.publish(topic, b"", 0, retain=True)
    time.sleep(0.2)
    client.disconnect()


@SHARDS
@PROTOCOLS
def test_basic(suite, shards, protocol):
    a, cb = suite("myclientid", protocol)
    assert subscribe(a, cb, [(TOPICS[0], 2)]) == [2]
    for qos in (0, 1, 2):
        a.publish(TOPICS[0], b"qos %d" % qos, qos)
    assert wait_for(lambda: len(cb.messages) == 3)
    time.sleep(0.2)
    assert sorted(cb.messages) == [(TOPICS[0], b"qos %d" % q, q, False) for q in (0, 1, 2)]
    a.disconnect()


@SHARDS
@PROTOCOLS
def test_retained_messages(suite, shards, protocol):
    a, cb = suite("myclientid", protocol)
    for qos, topic in ((0, TOPICS[1]), (1, TOPICS[2]), (2, TOPICS[3])):
        a.publish(topic, b"qos %d" % qos, qos, retain=True).wait_for_publish()
    time.sleep(0.2)
    subscribe(a, cb, [(WILDTOPICS[5], 2)])
    assert wait_for(lambda: len(cb.messages) == 3)
    time.sleep(0.2)
    assert sorted(cb.messages) == sorted([(TOPICS[1], b"qos 0", 0, True),
                                          (TOPICS[2], b"qos 1", 1, True),
                                          (TOPICS[3], b"qos 2", 2, True)])
    a.disconnect()
    clear_retained(suite, protocol)
    b, cb = suite("myclientid", protocol)
    subscribe(b, cb, [(WILDTOPICS[5], 2)])
    time.sleep(0.5)
    assert cb.messages == []


@SHARDS
@PROTOCOLS
def test_offline_message_queueing(suite, shards, protocol):
    a, cb = suite("myclientid", protocol, clean_session=False)
    subscribe(a, cb, [(WILDTOPICS[5], 2)])
    a.disconnect()
    b, _ = suite("myclientid2", protocol)
    for qos, topic in ((0, TOPICS[1]), (1, TOPICS[2]), (2, TOPICS[3])):
        b.publish(topic, b"qos %d" % qos, qos).wait_for_publish()
    b.disconnect()
    a, cb = suite("myclientid", protocol, clean_session=False)
    assert wait_for(lambda: len(cb.messages) >= 2)
    time.sleep(0.3)
    # QoS 0 may or may not be queued; by default shardmq does not.
    assert sorted(m[:3] for m in cb.messages) == [(TOPICS[2], b"qos 1", 1),
                                                  (TOPICS[3], b"qos 2", 2)]
    a.disconnect()


@SHARDS
@PROTOCOLS
def test_will_message(suite, shards, protocol):
    a, _ = suite("myclientid", protocol, keepalive=2,
                 will=(TOPICS[2], "client not disconnected", 0, False))
    b, cb = suite("myclientid2", protocol)
    subscribe(b, cb, [(TOPICS[2], 2)])
    time.sleep(0.1)
    a.loop_stop()
    a.socket().close()  # the client dies without DISCONNECT
    assert wait_for(lambda: cb.messages)
    assert cb.messages == [(TOPICS[2], b"client not disconnected", 0, False)]
    b.disconnect()


@SHARDS
@PROTOCOLS
def test_overlapping_subscriptions(suite, shards, protocol):
    a, cb = suite("myclientid", protocol)
    assert subscribe(a, cb, [(WILDTOPICS[6], 2), (WILDTOPICS[0], 1)]) == [2, 1]
    a.publish(TOPICS[3], b"overlapping topic filters", 2)
    assert wait_for(lambda: cb.messages)
    time.sleep(0.3)
    # One copy, at the highest QoS of the matching subscriptions [MQTT-3.3.5-1].
    assert cb.messages == [(TOPICS[3], b"overlapping topic filters", 2, False)]
    a.disconnect()


@SHARDS
@PROTOCOLS
def test_keepalive(suite, shards, protocol):
    # The client says keep-alive 2 s and then never speaks again (the suite
    # uses 5 s): the broker closes it after 3 s and publishes its will.
    a, _ = suite("myclientid", protocol, keepalive=2,
                 will=(TOPICS[4], "keepalive expiry", 0, False), start=False)
    a.loop(1.0)  # read the CONNACK, then nothing more
    b, cb = suite("myclientid2", protocol)
    subscribe(b, cb, [(TOPICS[4], 2)])
    assert wait_for(lambda: cb.messages, timeout=8)
    assert cb.messages == [(TOPICS[4], b"keepalive expiry", 0, False)]
    b.disconnect()


@SHARDS
@PROTOCOLS
def test_redelivery_on_reconnect(suite, shards, protocol):
    a, cb = suite("myclientid", protocol, clean_session=False)
    subscribe(a, cb, [(WILDTOPICS[6], 2)])
    a.loop_stop()  # a stops processing: nothing it receives is acknowledged
    b, _ = suite("myclientid2", protocol)
    b.publish(TOPICS[1], b"", 1, retain=False).wait_for_publish()
    b.publish(TOPICS[3], b"", 2, retain=False).wait_for_publish()
    time.sleep(0.3)
    a.socket().close()
    time.sleep(0.2)
    assert cb.messages == []
    a, cb = suite("myclientid", protocol, clean_session=False)
    assert wait_for(lambda: len(cb.messages) == 2)
    time.sleep(0.3)
    assert sorted(m[:3] for m in cb.messages) == [(TOPICS[1], b"", 1), (TOPICS[3], b"", 2)]
    a.disconnect()


@SHARDS
def test_zero_length_clientid(suite, shards):
    # Clean session 0 with an empty id is refused (paho refuses to even try,
    # so the refusal is checked byte by byte in test_conformance_connect.py).
    with pytest.raises(ValueError):
        paho.Client("", clean_session=False, protocol=paho.MQTTv311)
    a, cb = suite("", paho.MQTTv311, clean_session=True)
    assert cb.connects[0][1] == 0
    a.disconnect()


@SHARDS
@PROTOCOLS
def test_dollar_topics(suite, shards, protocol):
    a, cb = suite("myclientid", protocol)
    subscribe(a, cb, [(WILDTOPICS[5], 2)])
    a.publish("$" + TOPICS[1], b"", 1, retain=False).wait_for_publish()
    time.sleep(0.5)
    assert cb.messages == []  # [MQTT-4.7.2-1]
    a.disconnect()


@SHARDS
@PROTOCOLS
def test_unsubscribe(suite, shards, protocol):
    a, cb = suite("myclientid", protocol)
    subscribe(a, cb, [(TOPICS[0], 2)])
    subscribe(a, cb, [(TOPICS[1], 2)])
    subscribe(a, cb, [(TOPICS[2], 2)])
    time.sleep(0.1)
    count = len(cb.unsubscribeds)
    a.unsubscribe(TOPICS[0])
    a.unsubscribe(TOPICS[1])
    assert wait_for(lambda: len(cb.unsubscribeds) == count + 2)
    for topic in TOPICS[:3]:
        a.publish(topic, b"", 1)
    assert wait_for(lambda: cb.messages)
    time.sleep(0.3)
    assert [m[0] for m in cb.messages] == [TOPICS[2]]
    a.disconnect()


@SHARDS
def test_subscribe_failure(suite, shards):
    a, cb = suite("myclientid", paho.MQTTv311)
    # 3.1.1 can refuse one filter of a SUBSCRIBE with 0x80 [MQTT-3.9.3-1].
    assert subscribe(a, cb, [(NOSUBSCRIBE, 2)]) == [0x80]
    assert subscribe(a, cb, [(NOSUBSCRIBE, 1), (TOPICS[0], 1)]) == [0x80, 1]
    a.disconnect()
