"""Three shardmq nodes sharing state through Redis (README "Cluster"):
one owner per client id, persistent sessions that resume on any node with
their queued messages, the same retained set everywhere, and a node killed
with kill -9 whose sessions another node adopts.

RabbitMQ (as in test_cluster.py) and a redis-server from Debian's package run
for the whole module on free loopback ports, started and stopped here. The
module is skipped only when either server is not installed (tools/test
installs both).

Run alone: SHARDMQ_BIN=build/tools/shardmq /usr/bin/python3 -m pytest -q \
    -p no:cacheprovider tests/integration/test_cluster_redis.py
"""
import pathlib
import shutil
import struct
import signal
import socket
import subprocess
import tempfile
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

import mqtt_raw as raw
from conftest import RunningBroker, free_port, wait_until
from test_cluster import RABBIT_BIN, Client, Rabbit, connected_count

REDIS_SERVER = pathlib.Path("/usr/bin/redis-server")
pytestmark = pytest.mark.skipif(
    not (RABBIT_BIN / "rabbitmq-server").exists() or not REDIS_SERVER.exists(),
    reason="rabbitmq-server or redis-server is not installed "
           "(apt-get install rabbitmq-server redis-server)")

# A short lease, so that a killed node's sessions are adopted within seconds.
LEASE_MS = 1000
BIND_WAIT = 0.7
# After a takeover the new node reads the session's queue in Redis once more
# (cluster_sessions.cc: kDrainAfter, 3 s) for what reached the old node late.
DRAIN_WAIT = 3.5
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def redis_command(port, *args):
    """One RESP command over a plain socket; returns the decoded reply."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(b"".join(parts))
        reader = s.makefile("rb")
        return _read_reply(reader)


def _read_reply(reader):
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind in (b"+", b"-"):
        return rest.decode()
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = reader.read(n + 2)[:-2]
        return data
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(reader) for _ in range(n)]
    raise AssertionError(f"unexpected reply {line!r}")


class Redis:
    """A redis-server owned by the test, restartable on its port."""

    def __init__(self, base):
        self.base = pathlib.Path(base)
        self.port = free_port()
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        log = open(self.base / "redis.out", "a")
        self.process = subprocess.Popen(
            [str(REDIS_SERVER), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.base)],
            stdout=log, stderr=subprocess.STDOUT)

        def answers():
            try:
                return redis_command(self.port, "PING") == "PONG"
            except OSError:
                return False

        if not wait_until(answers, timeout=10, interval=0.05):
            raise RuntimeError("redis-server did not start:\n" +
                               (self.base / "redis.out").read_text()[-3000:])

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def get(self, key):
        return redis_command(self.port, "GET", "shardmq:" + key)


@pytest.fixture(scope="module")
def servers():
    base = tempfile.mkdtemp(prefix="shardmq-redis-")
    rabbit = Rabbit(base)
    redis = Redis(base)
    try:
        rabbit.start()
        redis.start()
        yield rabbit, redis
    finally:
        redis.stop()
        rabbit.close()
        shutil.rmtree(base, ignore_errors=True)


def redis_connected(node):
    return any("cluster: connected to Redis" in line for line in node.log_lines)


def start_node(servers, name, *extra, shards=2):
    rabbit, redis = servers
    node = RunningBroker(f"--cluster-amqp={rabbit.url}", f"--cluster-redis={redis.url}",
                         f"--node-id={name}", f"--cluster-lease-ms={LEASE_MS}", *extra,
                         shards=shards)
    assert wait_until(lambda: connected_count(node) >= 1 and redis_connected(node),
                      timeout=20), node.log()
    return node


def check_stopped(node, code):
    assert code == 0, f"shardmq exited with {code}:\n{node.log()[-3000:]}"
    for marker in SANITIZER_MARKERS:
        assert marker not in node.log(), node.log()[-6000:]


@pytest.fixture(scope="module")
def nodes(servers):
    started = []
    try:
        for name in ("ra", "rb", "rc"):
            started.append(start_node(servers, f"node-{name}"))
        yield started
    finally:
        for node in started:
            check_stopped(node, node.stop())


class Session:
    """A paho client with a persistent session; records CONNACK and
    DISCONNECT reason codes."""

    def __init__(self, node, client_id, clean_start=False, expiry=300,
                 version=paho.MQTTv5):
        self.messages = []
        self.lock = threading.Lock()
        self.session_present = None
        self.disconnect_reasons = []
        self.connected = threading.Event()
        self.client = paho.Client(client_id=client_id, protocol=version,
                                  clean_session=None if version == paho.MQTTv5 else clean_start)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        properties = None
        kwargs = {}
        if version == paho.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = expiry
            kwargs = {"clean_start": clean_start, "properties": properties}
        self.client.connect("127.0.0.1", node.port, **kwargs)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"

    def _on_message(self, client, userdata, message):
        with self.lock:
            self.messages.append(message)

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.session_present = bool(flags.get("session present"))
        self.connected.set()

    def _on_disconnect(self, client, userdata, rc, properties=None):
        self.disconnect_reasons.append(int(rc.value) if hasattr(rc, "value") else int(rc))
        # No automatic reconnect: it would take the id back.
        client._thread_terminate = True

    def subscribe(self, topic, qos=1):
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        if self.client._protocol == paho.MQTTv5:
            self.client.subscribe(topic, options=paho.SubscribeOptions(qos=qos))
        else:
            self.client.subscribe(topic, qos)
        assert done.wait(5)

    def payloads(self):
        with self.lock:
            return [m.payload for m in self.messages]

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def raw_v5(node, client_id, expiry=0, clean=True):
    """A raw MQTT 5 client (paho does not report the reason code of a
    DISCONNECT without properties)."""
    client = raw.Client(node.port)
    properties = b"\x11" + struct.pack(">I", expiry) if expiry else b""
    body = client.connect(client_id, version=5, clean=clean, properties=properties)
    assert body[1] == 0, body
    return client


def expect_taken_over(client):
    """The old connection gets DISCONNECT 0x8E and is closed [MQTT-3.1.4-3]."""
    pkt = client.read(5)
    assert pkt.type == raw.DISCONNECT, pkt
    assert pkt.body[0] == 0x8E, pkt
    assert client.closed_by_broker(3)


def publish_all(node, topic, payloads, qos=1, retain=False):
    pub = Client(node, f"pub-{time.monotonic_ns()}")
    for payload in payloads:
        pub.publish(topic, payload, qos=qos, retain=retain)
    pub.close()


def test_client_id_taken_over_from_another_node(servers, nodes):
    _, redis = servers
    a, b, _ = nodes
    first = raw_v5(a, "takeover-x")
    second = Session(b, "takeover-x", clean_start=True, expiry=0)
    # The node that had it closes it with DISCONNECT 0x8E Session taken over.
    expect_taken_over(first)
    assert not second.disconnect_reasons
    assert redis.get("owner:takeover-x") == b"node-rb"
    second.close()


def test_takeover_of_a_311_client_closes_it(nodes):
    a, _, c = nodes
    first = Session(a, "takeover-311", clean_start=True, version=paho.MQTTv311)
    second = Session(c, "takeover-311", clean_start=True, version=paho.MQTTv311)
    assert wait_until(lambda: first.disconnect_reasons, timeout=5)
    assert not second.disconnect_reasons
    second.close()
    first.client.loop_stop()


def test_persistent_session_resumes_on_another_node_with_queued_messages(servers, nodes):
    _, redis = servers
    a, b, c = nodes
    sub = Session(a, "roamer", clean_start=True, expiry=300)
    sub.subscribe("roam/+/x", qos=1)
    time.sleep(BIND_WAIT)
    sub.close()
    # Queued while offline: published on a third node, kept in Redis.
    sent = [f"m{i}".encode() for i in range(30)]
    publish_all(c, "roam/1/x", sent, qos=1)
    back = Session(b, "roamer", clean_start=False, expiry=300)
    assert back.session_present
    # Its subscription moved with it: new messages arrive on node b.
    time.sleep(BIND_WAIT)
    publish_all(a, "roam/2/x", [b"after"], qos=1)
    expected = set(sent) | {b"after"}
    assert wait_until(lambda: set(back.payloads()) == expected, timeout=10), back.payloads()
    time.sleep(DRAIN_WAIT)
    got = back.payloads()
    # Nothing lost. A message still on its way through RabbitMQ when the
    # client moved (its PUBACK does not wait for RabbitMQ) may reach both
    # nodes: at least once, at most twice, and possibly after newer ones.
    assert set(got) == expected
    assert all(got.count(p) <= 2 for p in expected), got
    assert redis.get("owner:roamer") == b"node-rb"
    # The queue in Redis was emptied by the resume.
    assert redis_command(redis.port, "LLEN", "shardmq:q:roamer") == 0
    back.close()


def test_session_taken_over_while_connected_keeps_its_subscriptions(nodes):
    a, b, c = nodes
    first = raw_v5(a, "mover", expiry=300)
    first.send(raw.subscribe(1, ("move/#", 1), version=5))
    first.expect(raw.SUBACK)
    time.sleep(BIND_WAIT)
    second = Session(c, "mover", clean_start=False, expiry=300)
    assert second.session_present
    expect_taken_over(first)
    time.sleep(BIND_WAIT)
    publish_all(b, "move/1", [b"one", b"two"], qos=1)
    assert wait_until(lambda: set(second.payloads()) == {b"one", b"two"}, timeout=10)
    time.sleep(DRAIN_WAIT)
    got = second.payloads()
    # At least once; during the hand-off's grace possibly twice.
    assert set(got) == {b"one", b"two"} and len(got) <= 4, got
    second.close()


def test_clean_start_on_another_node_discards_the_session(nodes):
    a, b, c = nodes
    sub = Session(a, "cleaner", clean_start=True, expiry=300)
    sub.subscribe("clean/t", qos=1)
    time.sleep(BIND_WAIT)
    sub.close()
    publish_all(c, "clean/t", [b"stale"], qos=1)
    fresh = Session(b, "cleaner", clean_start=True, expiry=300)
    assert not fresh.session_present
    time.sleep(BIND_WAIT)
    publish_all(c, "clean/t", [b"unseen"], qos=1)
    time.sleep(1.0)
    # Neither the queued message nor the old subscription came along.
    assert fresh.payloads() == []
    fresh.close()


def test_retained_set_is_the_same_on_a_node_started_later(servers, nodes):
    a, b, _ = nodes
    publish_all(a, "ret/kept", [b"v1"], qos=1, retain=True)
    publish_all(b, "ret/gone", [b"x"], qos=1, retain=True)
    publish_all(a, "ret/gone", [b""], qos=1, retain=True)  # cleared
    publish_all(b, "ret/kept", [b"v2"], qos=1, retain=True)
    time.sleep(0.5)
    late = start_node(servers, "node-late")
    try:
        sub = Session(late, "ret-reader", clean_start=True, expiry=0)
        sub.subscribe("ret/#", qos=1)
        assert wait_until(lambda: len(sub.payloads()) >= 1, timeout=5)
        time.sleep(0.5)
        by_topic = {m.topic: m.payload for m in sub.messages}
        assert by_topic == {"ret/kept": b"v2"}
        assert all(m.retain for m in sub.messages)
        sub.close()
    finally:
        check_stopped(late, late.stop())


def test_killed_node_sessions_are_adopted_and_resume_elsewhere(servers, nodes):
    _, redis = servers
    _, b, c = nodes
    doomed = start_node(servers, "node-doomed")
    try:
        online = Session(doomed, "survivor-online", clean_start=True, expiry=300)
        online.subscribe("doom/online", qos=1)
        parked = Session(doomed, "survivor-parked", clean_start=True, expiry=300)
        parked.subscribe("doom/parked", qos=1)
        time.sleep(BIND_WAIT)
        parked.close()
        publish_all(c, "doom/parked", [b"before-kill"], qos=1)
        transient = Session(doomed, "transient", clean_start=True, expiry=0)
        time.sleep(0.3)
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(10)
        online.client.loop_stop()
        transient.client.loop_stop()
        # Within a lease another node owns the dead node's ids (the bound
        # below leaves room for a loaded machine and sanitizer builds).
        owners = lambda: {cid: redis.get("owner:" + cid)
                          for cid in ("survivor-online", "survivor-parked", "transient")}
        assert wait_until(lambda: all(o not in (None, b"node-doomed")
                                      for cid, o in owners().items() if cid != "transient")
                          and owners()["transient"] is None,
                          timeout=LEASE_MS * 4 / 1000), owners()
        time.sleep(BIND_WAIT)
        # Published after the adoption: queued for both sessions.
        publish_all(c, "doom/online", [b"after-online"], qos=1)
        publish_all(c, "doom/parked", [b"after-parked"], qos=1)
        time.sleep(0.5)
        back = Session(b, "survivor-online", clean_start=False, expiry=300)
        assert back.session_present
        assert wait_until(lambda: back.payloads() == [b"after-online"], timeout=10), \
            back.payloads()
        back.close()
        back2 = Session(c, "survivor-parked", clean_start=False, expiry=300)
        assert back2.session_present
        assert wait_until(lambda: back2.payloads() == [b"before-kill", b"after-parked"],
                          timeout=10), back2.payloads()
        back2.close()
    finally:
        if doomed.process.poll() is None:
            doomed.process.kill()
        doomed.stop(send_signal=False)


def test_redis_restart_keeps_local_service_and_recovers(servers, nodes):
    _, redis = servers
    a, b, c = nodes
    redis.stop()
    try:
        # Local and cross-node traffic carry on without Redis.
        sub = Session(a, "no-redis-sub", clean_start=True, expiry=0)
        sub.subscribe("noredis/t", qos=1)
        time.sleep(BIND_WAIT)
        publish_all(c, "noredis/t", [b"through-rabbit"], qos=1)
        assert wait_until(lambda: sub.payloads() == [b"through-rabbit"], timeout=10)
        sub.close()
    finally:
        redis.start()
    # Back: every node reconnects, and ownership works again.
    assert wait_until(lambda: all(sum("cluster: connected to Redis" in line
                                      for line in n.log_lines) >= 2 for n in nodes),
                      timeout=15), [n.log()[-2000:] for n in nodes]
    first = raw_v5(a, "after-redis")
    second = Session(b, "after-redis", clean_start=True, expiry=0)
    expect_taken_over(first)
    second.close()


@pytest.mark.parametrize("args,message", [
    (["--cluster-redis=redis://127.0.0.1:1"], "--cluster-redis"),
    (["--cluster-amqp=amqp://guest:guest@127.0.0.1:1", "--node-id=n",
      "--cluster-redis=http://x"], "--cluster-redis=http://x"),
    (["--cluster-amqp=amqp://guest:guest@127.0.0.1:1", "--node-id=n",
      "--cluster-redis=redis://127.0.0.1:1", "--cluster-lease-ms=5"], "--cluster-lease-ms=5"),
])
def test_bad_redis_flags_stop_start_up(args, message):
    from conftest import BINARY
    result = subprocess.run([str(BINARY), "--listen=127.0.0.1:0", *args], capture_output=True,
                            text=True, timeout=20)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_redis_with_data_dir_stops_start_up(tmp_path):
    from conftest import BINARY
    result = subprocess.run([str(BINARY), "--listen=127.0.0.1:0",
                             "--cluster-amqp=amqp://guest:guest@127.0.0.1:1", "--node-id=n",
                             "--cluster-redis=redis://127.0.0.1:1", f"--data-dir={tmp_path}"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert "--data-dir" in result.stderr and "--cluster-redis" in result.stderr, result.stderr
