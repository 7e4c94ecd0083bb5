"""Unix-domain socket listeners and per-listener max_connections on the real
daemon: mosquitto_pub/mosquitto_sub (--unix) talk to TCP clients through the
broker both ways; the socket file gets its mode and owner, replaces a stale
file, refuses a path another broker serves or that is not a socket, refuses an
unknown owner, and is removed on SIGTERM; a listener's max_connections closes
the connection over it, lets one in again once another closes, and shows in
the Prometheus counter."""
import os
import pwd
import grp
import socket
import stat
import subprocess
import tempfile

import pytest

import mqtt_raw as raw
from conftest import BINARY, wait_until
from test_admin_http import get_json, metric_sum, metrics

CONNECT_TIMEOUT = 10


@pytest.fixture
def socket_dir():
    """A fresh directory for socket files (a short path: sun_path holds 107 bytes)."""
    path = tempfile.mkdtemp(prefix="shardmq-unix-")
    yield path
    subprocess.run(["rm", "-rf", path], check=False)


def start_failure(*listen):
    """Runs the daemon with these listeners, expecting it to refuse to start;
    returns its output."""
    done = subprocess.run([str(BINARY), "--shards=2", "--sys-interval=0",
                           *[f"--listen={a}" for a in listen]],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode != 0, done.stderr
    return done.stderr


def mosquitto_sub(*args):
    """A mosquitto_sub waiting for one message (10 s at most)."""
    return subprocess.Popen(["mosquitto_sub", "-C", "1", "-W", "10", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_subscribed(broker, count):
    """Waits until `count` SUBSCRIBEs have been handled (paho and mosquitto
    clients give no other sign)."""
    def subscribed():
        samples = metrics(broker)
        return metric_sum(samples, "shardmq_subscriptions") >= count
    assert wait_until(subscribed, timeout=10), broker.log()[-2000:]


def test_unix_and_tcp_clients_talk_both_ways(start_broker, socket_dir):
    path = os.path.join(socket_dir, "mqtt.sock")
    owner = ""
    if os.geteuid() == 0:
        owner = "&owner=nobody:nogroup"
    broker = start_broker(f"--listen=unix://{path}?mode=0660{owner}",
                          "--http-listen=127.0.0.1:0", "--sys-interval=0", shards=2)
    assert f"unix:{path}" in broker.addresses
    info = os.lstat(path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    if owner:
        assert info.st_uid == pwd.getpwnam("nobody").pw_uid
        assert info.st_gid == grp.getgrnam("nogroup").gr_gid

    # unix -> tcp: mosquitto_pub over the socket, a raw subscriber over TCP.
    tcp_sub = raw.subscribed(broker.port, "tcp-sub", ("from/unix", 1))
    published = subprocess.run(["mosquitto_pub", "--unix", path, "-t", "from/unix", "-q", "1",
                                "-m", "hello over unix"],
                               capture_output=True, text=True, timeout=CONNECT_TIMEOUT)
    assert published.returncode == 0, published.stderr
    [message] = raw.read_publishes(tcp_sub, 1)
    assert (message["topic"], message["payload"]) == ("from/unix", b"hello over unix")

    # tcp -> unix: mosquitto_sub over the socket, mosquitto_pub over TCP.
    unix_sub = mosquitto_sub("--unix", path, "-i", "unix-sub", "-t", "from/tcp", "-q", "1")
    wait_subscribed(broker, 2)
    # The admin API names unix clients' address "unix", TCP ones ip:port.
    addresses = {c["client_id"]: c["address"]
                 for c in get_json(broker, "/api/v1/clients")["clients"]}
    assert addresses["unix-sub"] == "unix", addresses
    assert addresses["tcp-sub"].startswith("127.0.0.1:"), addresses
    published = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port),
                                "-t", "from/tcp", "-q", "1", "-m", "hello over tcp"],
                               capture_output=True, text=True, timeout=CONNECT_TIMEOUT)
    assert published.returncode == 0, published.stderr
    out, err = unix_sub.communicate(timeout=15)
    assert unix_sub.returncode == 0, err
    assert out.strip() == "hello over tcp"
    tcp_sub.close()

    # The socket file goes with the broker.
    assert broker.stop() == 0, broker.log()[-2000:]
    assert not os.path.exists(path)


def test_raw_clients_on_unix_socket_reach_every_shard(start_broker, socket_dir):
    # Client ids homed on each shard: every one is handed over from whichever
    # shard accepted it, and still gets its messages.
    path = os.path.join(socket_dir, "mqtt.sock")
    broker = start_broker(f"--listen=unix://{path}", "--sys-interval=0", shards=2)
    clients = []
    for client_id in raw.spread_ids("unix-", 4, 2):
        client = raw.Client.unix(path)
        client.connect(client_id)
        client.send(raw.subscribe(1, (f"to/{client_id}", 0)))
        client.expect(raw.SUBACK)
        clients.append((client_id, client))
    sender = raw.connected(broker.port, "tcp-sender")
    for client_id, _ in clients:
        sender.send(raw.publish(f"to/{client_id}", client_id.encode()))
    for client_id, client in clients:
        assert raw.read_publishes(client, 1)[0]["payload"] == client_id.encode()
        client.close()
    sender.close()


def test_stale_socket_file_is_replaced(start_broker, socket_dir):
    path = os.path.join(socket_dir, "stale.sock")
    crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    crashed.bind(path)  # bound, never listening, closed: what a crash leaves
    crashed.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    broker = start_broker(f"--listen=unix://{path}", "--sys-interval=0")
    assert "removed the stale socket file" in broker.log()
    client = raw.Client.unix(path)
    assert client.connect("after-crash")[1] == 0
    client.close()


def test_socket_another_broker_serves_refuses_start(start_broker, socket_dir):
    path = os.path.join(socket_dir, "busy.sock")
    first = start_broker(f"--listen=unix://{path}", "--sys-interval=0")
    error = start_failure("127.0.0.1:0", f"unix://{path}")
    assert f"another process accepts connections on {path}" in error, error
    # The first broker keeps its socket and its clients.
    client = raw.Client.unix(path)
    assert client.connect("still-served")[1] == 0
    client.close()
    assert first.process.poll() is None


def test_path_that_is_not_a_socket_refuses_start(socket_dir):
    path = os.path.join(socket_dir, "notes.txt")
    with open(path, "w") as f:
        f.write("keep me")
    error = start_failure(f"unix://{path}")
    assert f"{path} exists and is not a socket" in error, error
    with open(path) as f:
        assert f.read() == "keep me"


def test_unknown_owner_refuses_start(socket_dir):
    path = os.path.join(socket_dir, "owned.sock")
    listener = f"unix://{path}?owner=no-such-user-here"
    error = start_failure(listener)
    assert listener in error and 'no user "no-such-user-here"' in error, error
    error = start_failure(f"unix://{path}?owner=root:no-such-group-here")
    assert 'no group "no-such-group-here"' in error, error
    assert not os.path.exists(path)


def closed_at_connect(client):
    """True if the broker closes the connection without a CONNACK. Over a
    unix socket the close may come before CONNECT is even sent (EPIPE)."""
    try:
        client.send(raw.connect("refused"))
    except (BrokenPipeError, ConnectionResetError):
        return True
    return client.closed_by_broker()


def refused_by_listener(broker):
    return metric_sum(metrics(broker), "shardmq_connections_refused_total",
                      reason="listener_max_connections")


def test_listener_max_connections(start_broker, socket_dir):
    path = os.path.join(socket_dir, "bounded.sock")
    # The first listener allows 2 at once, the unix one 1; a third listener
    # has no bound of its own.
    broker = start_broker("--listen=127.0.0.1:0", f"--listen=unix://{path}?max_connections=1",
                          "--http-listen=127.0.0.1:0", "--sys-interval=0", shards=2,
                          listen="127.0.0.1:0?max_connections=2")
    bounded, free = broker.port, int(broker.addresses[1].rpartition(":")[2])
    first = raw.connected(bounded, "first")
    second = raw.connected(bounded, "second")
    third = raw.Client(bounded)
    assert closed_at_connect(third), "the third connection on a 2-connection listener stayed open"
    assert wait_until(lambda: refused_by_listener(broker) == 1), refused_by_listener(broker)
    # The log is read by another thread: wait for the line rather than race it.
    assert wait_until(lambda: "refused a connection on listener 127.0.0.1:" in broker.log()), \
        broker.log()

    # Other listeners count their own.
    elsewhere = raw.connected(free, "elsewhere")
    local = raw.Client.unix(path)
    assert local.connect("local")[1] == 0
    local_extra = raw.Client.unix(path)
    assert closed_at_connect(local_extra)
    assert wait_until(lambda: refused_by_listener(broker) == 2), refused_by_listener(broker)

    # A closed connection makes room for another.
    second.send(raw.disconnect())
    second.close()
    assert wait_until(lambda: metric_sum(metrics(broker), "shardmq_connections_open") == 3)
    again = raw.Client(bounded)
    assert again.connect("again")[1] == 0
    assert refused_by_listener(broker) == 2
    for client in (first, third, elsewhere, local, local_extra, again):
        client.close()
