"""Interoperability with real third-party clients: mosquitto_pub/sub (C),
python3-paho-mqtt and MQTT.js, for MQTT 3.1 and 3.1.1, on 1 and 4 shards."""
import json
import pathlib
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

HERE = pathlib.Path(__file__).resolve().parent


def mosquitto_sub(port, topic, count, qos=0, version="mqttv311", extra=()):
    return subprocess.Popen(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", str(qos),
         "-C", str(count), "-W", "15", "-V", version, "-v", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def mosquitto_pub(port, topic, message, qos=0, version="mqttv311", extra=()):
    """message None sends an empty payload (-n)."""
    payload = ["-n"] if message is None else ["-m", message]
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                    *payload, "-q", str(qos), "-V", version, *extra],
                   check=True, timeout=15, capture_output=True)


def wait_subscribed():
    """mosquitto_sub prints nothing when subscribed; give its SUBSCRIBE time
    to land (a late SUBSCRIBE shows up as a missing message, never a pass)."""
    time.sleep(0.5)


@pytest.mark.parametrize("shards", [1, 4])
@pytest.mark.parametrize("version", ["mqttv31", "mqttv311"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mosquitto_clients_pub_sub(start_broker, shards, version, qos):
    broker = start_broker(shards=shards)
    sub = mosquitto_sub(broker.port, "sensors/+/temp", 3, qos=qos, version=version)
    wait_subscribed()
    for room in ("kitchen", "hall", "attic"):
        mosquitto_pub(broker.port, f"sensors/{room}/temp", f"{room}-21", qos=qos, version=version)
    out, err = sub.communicate(timeout=20)
    assert sub.returncode == 0, err
    assert out.splitlines() == ["sensors/kitchen/temp kitchen-21", "sensors/hall/temp hall-21",
                                "sensors/attic/temp attic-21"]


@pytest.mark.parametrize("shards", [1, 4])
def test_mosquitto_retained_message_reaches_late_subscriber(start_broker, shards):
    broker = start_broker(shards=shards)
    mosquitto_pub(broker.port, "status/door", "open", qos=1, extra=("-r",))
    sub = mosquitto_sub(broker.port, "status/#", 1)
    out, err = sub.communicate(timeout=20)
    assert out.strip() == "status/door open"
    # Deleting it with an empty retained payload leaves nothing for the next one.
    mosquitto_pub(broker.port, "status/door", None, qos=1, extra=("-r",))
    sub = mosquitto_sub(broker.port, "status/#", 1, extra=("-W", "1"))
    out, _ = sub.communicate(timeout=20)
    assert out.strip() == ""


@pytest.mark.parametrize("shards", [1, 4])
@pytest.mark.parametrize("protocol", [paho.MQTTv31, paho.MQTTv311])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_paho_pub_sub(start_broker, shards, protocol, qos):
    broker = start_broker(shards=shards)
    received = []
    got_all = threading.Event()
    subscribed = threading.Event()

    sub = paho.Client(client_id="paho-sub", protocol=protocol)
    sub.on_subscribe = lambda *a: subscribed.set()

    def on_message(client, userdata, message):
        received.append((message.topic, message.payload, message.qos))
        if len(received) == 10:
            got_all.set()

    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("paho/#", qos=qos)
    sub.loop_start()
    assert subscribed.wait(10)

    pub = paho.Client(client_id="paho-pub", protocol=protocol)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    infos = [pub.publish(f"paho/{i % 3}", f"message {i}".encode(), qos=qos) for i in range(10)]
    for info in infos:
        info.wait_for_publish(10)
    assert got_all.wait(10), received
    assert [payload for _, payload, _ in received] == [f"message {i}".encode() for i in range(10)]
    assert all(q == qos for _, _, q in received)
    pub.loop_stop()
    sub.loop_stop()
    pub.disconnect()
    sub.disconnect()


@pytest.mark.parametrize("shards", [1, 4])
def test_paho_persistent_session_gets_queued_messages(start_broker, shards):
    broker = start_broker(shards=shards)
    sub = paho.Client(client_id="paho-persistent", clean_session=False,
                      protocol=paho.MQTTv311)
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("queue/#", qos=1)
    sub.loop(1.0)
    sub.disconnect()

    pub = paho.Client(client_id="paho-queue-pub", protocol=paho.MQTTv311)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    for i in range(5):
        pub.publish("queue/x", f"q{i}", qos=1).wait_for_publish(10)
    pub.loop_stop()
    pub.disconnect()

    received = []
    done = threading.Event()
    flags = {}
    sub = paho.Client(client_id="paho-persistent", clean_session=False,
                      protocol=paho.MQTTv311)

    def on_connect(client, userdata, connect_flags, rc):
        flags.update(connect_flags)

    def on_message(client, userdata, message):
        received.append(message.payload.decode())
        if len(received) == 5:
            done.set()

    sub.on_connect = on_connect
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    assert done.wait(10), received
    sub.loop_stop()
    sub.disconnect()
    assert flags.get("session present") == 1
    assert received == [f"q{i}" for i in range(5)]


def run_mqttjs(*args, timeout=30):
    result = subprocess.run(["node", str(HERE / "mqttjs_client.js"), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, cwd=HERE)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("shards", [1, 4])
@pytest.mark.parametrize("protocol_version", [3, 4])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_mqttjs_pub_sub(start_broker, shards, protocol_version, qos):
    broker = start_broker(shards=shards)
    subscriber = subprocess.Popen(
        ["node", str(HERE / "mqttjs_client.js"), "--port", str(broker.port),
         "--protocol-version", str(protocol_version), "--subscribe", "js/+/x", "--qos", str(qos),
         "--expect", "3", "--timeout", "15000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE)
    # The subscriber prints its SUBACK on stderr; publish only after that.
    granted_line = subscriber.stderr.readline()
    assert "granted" in granted_line, granted_line
    run_mqttjs("--port", broker.port, "--protocol-version", protocol_version, "--qos", qos,
               "--publish", "js/1/x=one", "--publish", "js/2/x=two", "--publish", "js/3/x=three")
    out, err = subscriber.communicate(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["why"] == "done", result
    assert [m["payload"] for m in result["received"]] == ["one", "two", "three"]
    assert all(m["qos"] == qos for m in result["received"])
