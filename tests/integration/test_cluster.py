"""Three shardmq nodes joined through RabbitMQ (README "Cluster").

One rabbitmq-server from Debian's package runs for the whole module, on free
loopback ports, with its own data, log, cookie and epmd under a temporary
directory; it is stopped at the end. The module is skipped only when
rabbitmq-server is not installed (tools/test installs it).

Run alone: SHARDMQ_BIN=build/tools/shardmq /usr/bin/python3 -m pytest -q \
    -p no:cacheprovider tests/integration/test_cluster.py
"""
import os
import pathlib
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

from conftest import BINARY, ROOT, RunningBroker, free_port, wait_until

RABBIT_BIN = pathlib.Path("/usr/lib/rabbitmq/bin")
pytestmark = pytest.mark.skipif(not (RABBIT_BIN / "rabbitmq-server").exists(),
                                reason="rabbitmq-server is not installed "
                                       "(apt-get install rabbitmq-server)")

# Time for a SUBSCRIBE's binding to reach RabbitMQ before a test publishes.
BIND_WAIT = 0.7


def accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            # An AMQP listener answers a bad protocol header with its own.
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return len(s.recv(8)) > 0
    except OSError:
        return False


class Rabbit:
    """A rabbitmq-server (and its epmd) owned by the test."""

    def __init__(self, base):
        self.base = pathlib.Path(base)
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"shardmq-test-{os.getpid()}@localhost"
        (self.base / "enabled_plugins").write_text("[].\n")
        self.env = dict(os.environ,
                        HOME=str(self.base),  # the Erlang cookie lives here
                        RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
                        RABBITMQ_LOG_BASE=str(self.base / "log"),
                        RABBITMQ_NODENAME=self.node,
                        RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                        RABBITMQ_NODE_PORT=str(self.port),
                        RABBITMQ_DIST_PORT=str(self.dist_port),
                        ERL_EPMD_PORT=str(self.epmd_port),
                        ERL_EPMD_ADDRESS="127.0.0.1",
                        RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "enabled_plugins"),
                        RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq"),
                        RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
                        RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
                        RABBITMQ_PID_FILE=str(self.base / "rabbit.pid"))
        # Our own epmd in the foreground, so nothing is left daemonized.
        self.epmd = subprocess.Popen(["epmd", "-port", str(self.epmd_port)], env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.process = None

    @property
    def url(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}"

    def start(self):
        log = open(self.base / "server.out", "a")
        self.process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: accepts(self.port) or self.process.poll() is not None,
                          timeout=60, interval=0.2) or self.process.poll() is not None:
            raise RuntimeError("rabbitmq-server did not start:\n" +
                               (self.base / "server.out").read_text()[-3000:])

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def ctl(self, *args):
        result = subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.node, "-q", *args],
                                env=self.env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def close(self):
        self.stop()
        self.epmd.kill()
        self.epmd.wait()


@pytest.fixture(scope="module")
def rabbit():
    base = tempfile.mkdtemp(prefix="shardmq-rabbit-")
    server = Rabbit(base)
    try:
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


def connected_count(node):
    return sum("cluster: connected to RabbitMQ" in line for line in node.log_lines)


@pytest.fixture(scope="module")
def nodes(rabbit):
    started = []
    try:
        for name in ("a", "b", "c"):
            # Node b serves /metrics too.
            extra = ["--http-listen=127.0.0.1:0", "--sys-interval=0"] if name == "b" else []
            started.append(RunningBroker(f"--cluster-amqp={rabbit.url}", f"--node-id=node-{name}",
                                         *extra, shards=2))
        for node in started:
            assert wait_until(lambda: connected_count(node) >= 1, timeout=20), node.log()
        yield started
    finally:
        for node in started:
            code = node.stop()
            assert code == 0, f"shardmq exited with {code}:\n{node.log()[-3000:]}"
            # With a sanitizer build (SHARDMQ_BIN=build-tsan/...), any report fails.
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                           "WARNING: ThreadSanitizer"):
                assert marker not in node.log(), node.log()[-6000:]


class Client:
    """A paho client that collects what it receives."""

    def __init__(self, node, client_id, version=paho.MQTTv5):
        self.messages = queue.Queue()
        self.client = paho.Client(client_id=client_id, protocol=version)
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        self.client.connect("127.0.0.1", node.port)
        self.client.loop_start()
        assert connected.wait(5)

    def subscribe(self, topic, qos=1, no_local=False):
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        if self.client._protocol == paho.MQTTv5:
            self.client.subscribe(topic, options=paho.SubscribeOptions(qos=qos, noLocal=no_local))
        else:
            self.client.subscribe(topic, qos)
        assert done.wait(5)

    def unsubscribe(self, topic):
        done = threading.Event()
        self.client.on_unsubscribe = lambda *a: done.set()
        self.client.unsubscribe(topic)
        assert done.wait(5)

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if qos > 0:
            info.wait_for_publish(5)
            assert info.is_published()

    def get(self, timeout=5):
        return self.messages.get(timeout=timeout)

    def drain(self, wait=0.5):
        time.sleep(wait)
        out = []
        while not self.messages.empty():
            out.append(self.messages.get())
        return out

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def test_cross_node_pubsub_all_qos_and_wildcards(nodes):
    a, b, c = nodes
    pub = Client(a, "pub-qos")
    plus = Client(b, "sub-plus")
    hash_ = Client(c, "sub-hash")
    dollar = Client(c, "sub-dollar")
    # On the publisher's node: one copy, not a second one back from RabbitMQ.
    local = Client(a, "sub-local")
    local.subscribe("q/#", qos=2)
    plus.subscribe("q/+/x", qos=2)
    hash_.subscribe("#", qos=2)
    dollar.subscribe("$q/#", qos=2)
    time.sleep(BIND_WAIT)
    for qos in (0, 1, 2):
        pub.publish(f"q/{qos}/x", f"m{qos}", qos=qos)
        got = plus.get()
        assert (got.topic, got.payload, got.qos) == (f"q/{qos}/x", f"m{qos}".encode(), qos)
        got = hash_.get()
        assert (got.topic, got.payload, got.qos) == (f"q/{qos}/x", f"m{qos}".encode(), qos)
    # '#' does not match a '$' topic [MQTT-4.7.2-1]; a '$' filter does.
    pub.publish("$q/y", "dollar", qos=1)
    assert dollar.get().payload == b"dollar"
    assert [m.topic for m in hash_.drain()] == []
    assert [m.topic for m in plus.drain(0)] == []
    assert sorted(m.topic for m in local.drain(0)) == ["q/0/x", "q/1/x", "q/2/x"]
    for client in (pub, plus, hash_, dollar, local):
        client.close()


def test_suback_waits_for_the_binding(nodes):
    """A SUBACK on one node means a message published on another node right
    after it arrives: the node's queue is bound before SUBACK is sent."""
    a, _, c = nodes
    pub = Client(a, "pub-bound")
    for i in range(15):
        sub = Client(c, f"sub-bound-{i}")
        sub.subscribe(f"bound/{i}/+", qos=1)  # waits for SUBACK
        pub.publish(f"bound/{i}/x", f"n{i}", qos=1)
        got = sub.get(timeout=5)
        assert (got.topic, got.payload) == (f"bound/{i}/x", f"n{i}".encode())
        sub.close()
    pub.close()


def test_no_local_holds_across_nodes(nodes):
    a, b, _ = nodes
    # The same client id on two nodes (nothing shares the registry yet):
    # no-local is about the publisher's client id, wherever it is.
    publisher = Client(a, "same-id")
    same = Client(b, "same-id")
    other = Client(b, "other-id")
    same.subscribe("nl/t", qos=1, no_local=True)
    other.subscribe("nl/t", qos=1)
    time.sleep(BIND_WAIT)
    publisher.publish("nl/t", "hello", qos=1)
    assert other.get().payload == b"hello"
    assert same.drain() == []
    for client in (publisher, same, other):
        client.close()


def test_mqtt5_properties_cross_nodes(nodes):
    a, _, c = nodes
    pub = Client(a, "pub-props")
    sub = Client(c, "sub-props")
    sub.subscribe("props/t", qos=1)
    time.sleep(BIND_WAIT)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k1", "v1"), ("k2", "v2")]
    props.ContentType = "text/plain"
    props.ResponseTopic = "reply/here"
    props.CorrelationData = b"\x00corr\xff"
    props.MessageExpiryInterval = 120
    props.PayloadFormatIndicator = 1
    pub.publish("props/t", "body", qos=1, properties=props)
    got = sub.get()
    assert got.payload == b"body"
    p = got.properties
    assert p.UserProperty == [("k1", "v1"), ("k2", "v2")]
    assert p.ContentType == "text/plain"
    assert p.ResponseTopic == "reply/here"
    assert p.CorrelationData == b"\x00corr\xff"
    assert 110 <= p.MessageExpiryInterval <= 120
    assert p.PayloadFormatIndicator == 1
    pub.close()
    sub.close()


def test_retained_message_reaches_a_new_subscriber_on_another_node(nodes):
    a, _, c = nodes
    pub = Client(a, "pub-retain")
    pub.publish("ret/one", "kept", qos=1, retain=True)
    time.sleep(BIND_WAIT)
    late = Client(c, "late-retain")
    late.subscribe("ret/#", qos=1)
    got = late.get()
    assert (got.topic, got.payload, got.retain) == ("ret/one", b"kept", True)
    # Cleared everywhere too.
    pub.publish("ret/one", "", qos=1, retain=True)
    time.sleep(BIND_WAIT)
    later = Client(c, "later-retain")
    later.subscribe("ret/#", qos=1)
    assert later.drain() == []
    for client in (pub, late, later):
        client.close()


def bindings_of(rabbit, node_id):
    out = rabbit.ctl("list_bindings", "source_name", "destination_name", "routing_key")
    keys = set()
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == "shardmq" and parts[1] == f"shardmq.node.{node_id}":
            keys.add(parts[2])
    return keys


def metrics(node):
    match = re.search(r"admin HTTP on http://(\S+) ", node.log())
    with urllib.request.urlopen(f"http://{match.group(1)}/metrics", timeout=5) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_unsubscribe_unbinds(nodes, rabbit):
    _, b, _ = nodes
    before = metrics(b)["shardmq_cluster_bindings"]
    sub = Client(b, "sub-unbind")
    sub.subscribe("unb/+/z", qos=1)
    time.sleep(BIND_WAIT)
    keys = bindings_of(rabbit, "node-b")
    assert "n.wunb.*.wz" in keys and "tn.wunb.#" in keys and "r" in keys
    assert metrics(b)["shardmq_cluster_bindings"] == before + 2
    sub.unsubscribe("unb/+/z")
    time.sleep(BIND_WAIT)
    keys = bindings_of(rabbit, "node-b")
    assert "n.wunb.*.wz" not in keys and "tn.wunb.#" not in keys and "r" in keys
    m = metrics(b)
    assert m["shardmq_cluster_bindings"] == before
    assert m["shardmq_cluster_connected"] == 1
    sub.close()


def test_rabbitmq_restart_loses_no_qos1_message(nodes, rabbit):
    a, _, c = nodes
    sub = Client(c, "sub-restart")
    sub.subscribe("stream/t", qos=1)
    # A shared group's queue is consumed again after the reconnect.
    shared = Client(nodes[1], "shared-restart")
    shared.subscribe("$share/gr/stream/t", qos=1)
    wait_consumers(rabbit, "gr", "stream/t", 1)
    pub = Client(a, "pub-restart")
    total = 150
    before = [connected_count(node) for node in nodes]

    def publish_all():
        for i in range(total):
            pub.publish("stream/t", str(i), qos=1)
            time.sleep(0.03)

    # A filter given up while RabbitMQ is away is unbound once it is back.
    gone = Client(nodes[1], "sub-gone")
    gone.subscribe("gone/+", qos=1)
    time.sleep(BIND_WAIT)
    thread = threading.Thread(target=publish_all)
    thread.start()
    time.sleep(1.0)
    rabbit.stop()
    gone.unsubscribe("gone/+")
    gone.close()
    rabbit.start()
    thread.join(60)
    # Every node reconnects (with back-off) and flushes what it held.
    for node, count in zip(nodes, before):
        assert wait_until(lambda: connected_count(node) > count, timeout=20), node.log()[-2000:]
    assert "n.wgone.*" not in bindings_of(rabbit, "node-b")
    seen = set()
    deadline = time.monotonic() + 20
    while len(seen) < total and time.monotonic() < deadline:
        try:
            seen.add(int(sub.get(timeout=1).payload))
        except queue.Empty:
            pass
    assert sorted(seen) == list(range(total))  # at least once: duplicates allowed
    wait_consumers(rabbit, "gr", "stream/t", 1)
    seen = set()
    deadline = time.monotonic() + 20
    while len(seen) < total and time.monotonic() < deadline:
        try:
            seen.add(int(shared.get(timeout=1).payload))
        except queue.Empty:
            pass
    assert sorted(seen) == list(range(total))
    pub.close()
    sub.close()
    shared.close()


@pytest.mark.parametrize("args, message", [
    (["--cluster-amqp=amqp://guest:guest@h:5672"],
     "--cluster-amqp=amqp://guest:guest@h:5672: needs --node-id"),
    (["--cluster-amqp=rabbit:5672", "--node-id=a"], "--cluster-amqp=rabbit:5672: must be amqp://"),
    (["--cluster-amqp=amqp://h", "--node-id=a/b"], "--node-id=a/b: must be at most 200"),
    (["--cluster-amqp=amqp://h", "--node-id=a", "--cluster-buffer=0"],
     "--cluster-buffer=0: must be between 1"),
    (["--cluster-amqp=amqp://h:notaport", "--node-id=a"],
     "--cluster-amqp=amqp://h:notaport: not an amqp://"),
])
def test_bad_cluster_flags_stop_start_up(args, message):
    result = subprocess.run([str(BINARY), "--listen=127.0.0.1:0", *args],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout


def test_bad_cluster_key_in_config_file_names_file_line_and_key(tmp_path):
    config = tmp_path / "shardmq.toml"
    config.write_text('cluster_amqp = "amqp://guest:guest@h:5672"\nnode_id = "a b"\n')
    result = subprocess.run([str(BINARY), "--listen=127.0.0.1:0", f"--config={config}"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode != 0
    assert f"{config}:2: node_id = a b: must be at most 200" in result.stderr + result.stdout


def test_restarted_node_rebinds_its_persistent_sessions(nodes, rabbit, tmp_path):
    """--data-dir: a restarted node binds the filters of the persistent
    sessions it recovered, so they get other nodes' messages while offline."""
    a = nodes[0]
    args = [f"--cluster-amqp={rabbit.url}", "--node-id=node-d", f"--data-dir={tmp_path}",
            "--http-listen=127.0.0.1:0", "--sys-interval=0"]
    d = RunningBroker(*args, shards=2)
    try:
        assert wait_until(lambda: connected_count(d) >= 1, timeout=20), d.log()
        sub = paho.Client(client_id="persist-d", clean_session=False, protocol=paho.MQTTv311)
        sub.connect("127.0.0.1", d.port)
        sub.loop_start()
        result, _ = sub.subscribe("dur/+", 1)
        assert result == 0
        assert wait_until(lambda: metrics(d)["shardmq_cluster_bindings"] == 2, timeout=5)
        sub.disconnect()
        sub.loop_stop()
        assert d.stop() == 0
        d = RunningBroker(*args, shards=2)
        assert wait_until(lambda: connected_count(d) >= 1, timeout=20), d.log()
        assert metrics(d)["shardmq_cluster_bindings"] == 2
        pub = Client(a, "pub-dur")
        pub.publish("dur/x", "while offline", qos=1)
        pub.close()
        got = queue.Queue()
        sub = paho.Client(client_id="persist-d", clean_session=False, protocol=paho.MQTTv311)
        sub.on_message = lambda c, u, m: got.put(m.payload)
        sub.connect("127.0.0.1", d.port)
        sub.loop_start()
        assert got.get(timeout=5) == b"while offline"
        sub.disconnect()
        sub.loop_stop()
    finally:
        assert d.stop() == 0


def test_restarted_node_consumes_its_persistent_shared_members_queues(nodes, rabbit, tmp_path):
    """--data-dir: a restarted node consumes the shared queues of the groups
    its recovered persistent sessions are members of (not its node queue)."""
    a = nodes[0]
    args = [f"--cluster-amqp={rabbit.url}", "--node-id=node-e", f"--data-dir={tmp_path}"]
    e = RunningBroker(*args, shards=2)
    try:
        assert wait_until(lambda: connected_count(e) >= 1, timeout=20), e.log()
        sub = paho.Client(client_id="persist-e", clean_session=False, protocol=paho.MQTTv311)
        sub.connect("127.0.0.1", e.port)
        sub.loop_start()
        result, _ = sub.subscribe("$share/ge/dur2/+", 1)
        assert result == 0
        wait_consumers(rabbit, "ge", "dur2/+", 1)
        sub.disconnect()
        sub.loop_stop()
        assert e.stop() == 0
        wait_consumers(rabbit, "ge", "dur2/+", 0)
        e = RunningBroker(*args, shards=2)
        assert wait_until(lambda: connected_count(e) >= 1, timeout=20), e.log()
        wait_consumers(rabbit, "ge", "dur2/+", 1)
        assert not any(k.startswith("n.wdur2") for k in bindings_of(rabbit, "node-e"))
        pub = Client(a, "pub-dur2")
        pub.publish("dur2/x", "for the group", qos=1)
        pub.close()
        got = queue.Queue()
        sub = paho.Client(client_id="persist-e", clean_session=False, protocol=paho.MQTTv311)
        sub.on_message = lambda c, u, m: got.put(m.payload)
        sub.connect("127.0.0.1", e.port)
        sub.loop_start()
        assert got.get(timeout=5) == b"for the group"
        sub.disconnect()
        sub.loop_stop()
    finally:
        assert e.stop() == 0


# Shared subscriptions across nodes: each message to one member of the group
# in the whole cluster (README "Cluster", "Shared subscriptions").

def shared_queue(group, topic_filter):
    """The shared queue's name, as every node computes it (amqp_keys.h)."""
    h = 0x6c62272e07bb014262b821756295c58d
    for byte in group.encode() + b"\0" + topic_filter.encode():
        h = ((h ^ byte) * ((1 << 88) | 0x13b)) % (1 << 128)
    return "shardmq.share.%032x" % h


def queue_consumers(rabbit, name):
    """The queue's consumer count, or None when RabbitMQ has no such queue."""
    for line in rabbit.ctl("list_queues", "name", "consumers").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0] == name:
            return int(parts[1])
    return None


def wait_consumers(rabbit, group, topic_filter, count):
    name = shared_queue(group, topic_filter)
    assert wait_until(lambda: queue_consumers(rabbit, name) == count, timeout=20, interval=0.3), \
        (name, queue_consumers(rabbit, name))


def collect(clients, expected, timeout=20):
    """What each client got, until `expected` messages arrived in all or the
    timeout passed, and then for another half second (late duplicates)."""
    got = {client: [] for client in clients}
    deadline = time.monotonic() + timeout
    while sum(len(v) for v in got.values()) < expected and time.monotonic() < deadline:
        for client in clients:
            try:
                while True:
                    got[client].append(client.messages.get_nowait().payload.decode())
            except queue.Empty:
                pass
        time.sleep(0.02)
    for client in clients:
        got[client] += [m.payload.decode() for m in client.drain(0.5 if client is clients[0]
                                                                 else 0)]
    return got


def exactly_once(got, payloads):
    everything = sorted(p for messages in got.values() for p in messages)
    assert everything == sorted(payloads), (len(everything), len(payloads))


def publish_from(publishers, topic, count, qos=1):
    """`count` messages from each publisher in turn; returns their payloads."""
    payloads = []
    for i in range(count):
        for n, pub in enumerate(publishers):
            payload = f"{n}-{i}"
            pub.publish(topic, payload, qos=qos)
            payloads.append(payload)
    return payloads


def test_shared_subscription_one_member_cluster_wide(nodes, rabbit):
    a, b, c = nodes
    # One member on a and on b, two on c.
    members = [Client(a, "sh-a1"), Client(b, "sh-b1"), Client(c, "sh-c1"), Client(c, "sh-c2")]
    for member in members:
        member.subscribe("$share/g/t/#", qos=1)
    wait_consumers(rabbit, "g", "t/#", 3)
    pub_a, pub_b, pub_c = Client(a, "sh-pub-a"), Client(b, "sh-pub-b"), Client(c, "sh-pub-c")
    # From one node (which has a member itself): each message once in all.
    payloads = publish_from([pub_a], "t/x/y", 60)
    got = collect(members, len(payloads))
    exactly_once(got, payloads)
    nodes_served = {id(node) for node, client in zip((a, b, c, c), members) if got[client]}
    assert len(nodes_served) > 1, {m.client._client_id: len(v) for m, v in got.items()}
    # From every node.
    payloads = publish_from([pub_a, pub_b, pub_c], "t/z", 30)
    got = collect(members, len(payloads))
    exactly_once(got, payloads)
    nodes_served = {id(node) for node, client in zip((a, b, c, c), members) if got[client]}
    assert len(nodes_served) > 1, {m.client._client_id: len(v) for m, v in got.items()}
    # A single message: one member gets it.
    pub_b.publish("t/q", "last", qos=1)
    got = collect(members, 1)
    [message] = [m for v in got.values() for m in v]
    assert message == "last"
    for client in members + [pub_a, pub_b, pub_c]:
        client.close()


def test_two_groups_and_a_plain_subscriber_each_get_every_message_once(nodes, rabbit):
    a, b, c = nodes
    g1 = [Client(a, "g1-a"), Client(b, "g1-b")]
    g2 = [Client(b, "g2-b"), Client(c, "g2-c")]
    for member in g1:
        member.subscribe("$share/g1/t2/#", qos=1)
    for member in g2:
        member.subscribe("$share/g2/t2/#", qos=1)
    # Non-shared subscribers on the same filter, one on the publishers' node.
    plain_c = Client(c, "plain-c")
    plain_a = Client(a, "plain-a")
    plain_c.subscribe("t2/#", qos=1)
    plain_a.subscribe("t2/#", qos=1)
    wait_consumers(rabbit, "g1", "t2/#", 2)
    wait_consumers(rabbit, "g2", "t2/#", 2)
    time.sleep(BIND_WAIT)
    pubs = [Client(a, "g12-pub-a"), Client(b, "g12-pub-b")]
    payloads = publish_from(pubs, "t2/m", 40)
    exactly_once(collect(g1, len(payloads)), payloads)
    exactly_once(collect(g2, len(payloads)), payloads)
    exactly_once(collect([plain_c], len(payloads)), payloads)
    exactly_once(collect([plain_a], len(payloads)), payloads)
    # A retained message too: once per group, once per plain subscriber.
    pubs[1].publish("t2/kept", "retained", qos=1, retain=True)
    exactly_once(collect(g1, 1), ["retained"])
    exactly_once(collect(g2, 1), ["retained"])
    exactly_once(collect([plain_c], 1), ["retained"])
    exactly_once(collect([plain_a], 1), ["retained"])
    pubs[1].publish("t2/kept", "", qos=1, retain=True)  # cleared for later tests
    for client in g1 + g2 + pubs + [plain_c, plain_a]:
        client.close()


def test_shared_members_left_on_other_nodes_get_everything(nodes, rabbit):
    a, b, c = nodes
    members = [Client(a, "left-a"), Client(b, "left-b"), Client(c, "left-c")]
    for member in members:
        member.subscribe("$share/gl/t3/+", qos=1)
    wait_consumers(rabbit, "gl", "t3/+", 3)
    # c's only member leaves: c stops consuming, the queue stays.
    members[2].unsubscribe("$share/gl/t3/+")
    wait_consumers(rabbit, "gl", "t3/+", 2)
    pub = Client(c, "left-pub")
    payloads = publish_from([pub], "t3/x", 60)
    got = collect(members[:2], len(payloads))
    exactly_once(got, payloads)
    assert all(got[m] for m in members[:2]), {m.client._client_id: len(got[m]) for m in got}
    assert members[2].drain(0) == []
    # Every member gone: RabbitMQ keeps the queue (x-expires), with no consumer.
    for member in members[:2]:
        member.unsubscribe("$share/gl/t3/+")
    wait_consumers(rabbit, "gl", "t3/+", 0)
    for client in members + [pub]:
        client.close()


def test_shared_subscription_qos0_across_nodes(nodes, rabbit):
    a, b, c = nodes
    members = [Client(a, "q0-a"), Client(b, "q0-b"), Client(c, "q0-c")]
    for member in members:
        member.subscribe("$share/g0/t0/#", qos=0)
    wait_consumers(rabbit, "g0", "t0/#", 3)
    pubs = [Client(b, "q0-pub-b"), Client(c, "q0-pub-c")]
    payloads = publish_from(pubs, "t0/s", 50, qos=0)
    got = collect(members, len(payloads))
    exactly_once(got, payloads)
    assert sum(1 for m in members if got[m]) > 1
    for client in members + pubs:
        client.close()


def test_publishers_outrunning_rabbitmq_are_slowed_not_dropped(nodes, rabbit):
    """QoS 1 publishers faster than RabbitMQ: the node's buffer towards it
    stays bounded by pausing their reading, and nothing acknowledged is
    lost (a full buffer drops only while RabbitMQ is away)."""
    import json
    bench = ROOT / "build" / "tools" / "bench" / "shardmq-bench"
    _, b, _ = nodes
    fast = RunningBroker(f"--cluster-amqp={rabbit.url}", "--node-id=node-fast",
                         "--cluster-buffer=2000", "--http-listen=127.0.0.1:0",
                         "--sys-interval=0", shards=1)
    try:
        assert wait_until(lambda: connected_count(fast) >= 1, timeout=20), fast.log()
        result = subprocess.run(
            [str(os.environ.get("SHARDMQ_BENCH_BIN", bench)), "--json", "--progress=false",
             "--scenario=p2p", "--pairs=4", "--qos=1", f"--port={fast.port}",
             f"--sub-port={b.port}", "--settle=1s", "--duration=3s", "--warmup=200ms",
             "--drain=20s"],
            capture_output=True, text=True, timeout=90)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        assert result.returncode == 0, result.stderr
        assert report["received_total"] > 2000
        assert report["lost"] == 0 and report["duplicated"] == 0, report
        m = metrics(fast)
        assert m["shardmq_cluster_dropped_total{qos=\"1_2\"}"] == 0
        assert m["shardmq_cluster_publisher_pauses_total"] > 0
    finally:
        code = fast.stop()
        assert code == 0, fast.log()[-3000:]
