"""TLS listeners against the real binary: a CA, server and client certificates
made here with the openssl command line; mosquitto_pub/sub and paho over TLS
1.2 and 1.3; bad, missing and plain-TCP clients refused; the certificate
identity as the user name (--tls-identity-as-username) with an ACL file."""

import pathlib
import socket
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

from conftest import BINARY


def openssl(cwd, *args):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    for ca in ("ca", "rogue-ca"):
        openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN={ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")

    def issue(name, ca, subject, ext=None):
        openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject,
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        extra = ["-extfile", ext] if ext else []
        openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
                f"{ca}.key", "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", *extra)

    issue("server", "ca", "/CN=localhost", "server.ext")
    issue("client", "ca", "/CN=alice")
    issue("rogue", "rogue-ca", "/CN=mallory")
    return d


def tls_args(certs, require=True):
    args = [f"--tls-cert={certs / 'server.pem'}", f"--tls-key={certs / 'server.key'}",
            f"--tls-ca={certs / 'ca.pem'}"]
    if require:
        args.append("--tls-require-client-cert")
    return args


def start_tls(start_broker, certs, shards=2, require=True):
    return start_broker(*tls_args(certs, require), shards=shards, listen="tls://127.0.0.1:0")


def client_tls(certs, who="client"):
    args = ["--cafile", str(certs / "ca.pem")]
    if who:
        args += ["--cert", str(certs / f"{who}.pem"), "--key", str(certs / f"{who}.key")]
    return args


def mosquitto_pub(port, topic, message, extra=(), qos=1, client_id=None):
    cmd = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-m", message,
           "-q", str(qos), *extra]
    if client_id:
        cmd += ["-i", client_id]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=10)


def test_mosquitto_pub_sub_over_tls_with_hand_offs(start_broker, certs):
    broker = start_tls(start_broker, certs, shards=2)
    assert any("listener tls://" in line and "client certificate required" in line
               for line in broker.log_lines), broker.log()
    subs = []
    for i in range(4):
        subs.append(subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t", "tls/#", "-q",
             "1", "-C", "8", "-i", f"tls-sub-{i}", "-v", *client_tls(certs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    time.sleep(0.8)  # mosquitto_sub prints nothing once subscribed
    for i in range(8):
        result = mosquitto_pub(broker.port, f"tls/{i}", f"m{i}", client_tls(certs),
                               client_id=f"tls-pub-{i}")
        assert result.returncode == 0, result.stderr
    for sub in subs:
        out, err = sub.communicate(timeout=10)
        assert sub.returncode == 0, err
        assert out.split("\n")[:8] == [f"tls/{i} m{i}" for i in range(8)]
    assert broker.stop() == 0
    # Client ids are spread over both shards: some connections moved to their
    # home shard after CONNECT, TLS state and all.
    handed_in = sum(int(line.split("(")[1].split(" handed in")[0]) for line in broker.log_lines
                    if "handed in" in line)
    assert handed_in > 0, broker.log()


def test_tls12_and_tls13(start_broker, certs):
    broker = start_tls(start_broker, certs)
    for version in ("tlsv1.2", "tlsv1.3"):
        result = mosquitto_pub(broker.port, "v", version,
                               [*client_tls(certs), "--tls-version", version])
        assert result.returncode == 0, (version, result.stderr)


def test_paho_tls_set_large_messages(start_broker, certs):
    broker = start_tls(start_broker, certs, shards=2)
    got = []
    done = threading.Event()
    payload = bytes(range(256)) * 1000  # crosses many TLS records

    def on_message(_client, _userdata, message):
        got.append(message.payload)
        if len(got) == 3:
            done.set()

    clients = []
    for name in ("paho-sub", "paho-pub"):
        c = paho.Client(client_id=name, protocol=paho.MQTTv311)
        c.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / "client.pem"),
                  keyfile=str(certs / "client.key"))
        clients.append(c)
    sub, pub = clients
    subscribed = threading.Event()
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.connect("127.0.0.1", broker.port)
    sub.loop_start()
    sub.subscribe("big/#", qos=1)
    assert subscribed.wait(10)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    for i in range(3):
        pub.publish(f"big/{i}", payload, qos=1).wait_for_publish(10)
    assert done.wait(10)
    assert got == [payload] * 3
    for c in clients:
        c.disconnect()
        c.loop_stop()


def test_bad_or_missing_client_certificate_refused(start_broker, certs):
    broker = start_tls(start_broker, certs)
    for who in ("rogue", None):
        result = mosquitto_pub(broker.port, "x", "y", client_tls(certs, who))
        assert result.returncode != 0, who
    connacks = []
    c = paho.Client(client_id="paho-rogue")
    c.on_connect = lambda _c, _u, _f, rc: connacks.append(rc)
    c.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / "rogue.pem"),
              keyfile=str(certs / "rogue.key"))
    try:
        c.connect("127.0.0.1", broker.port)
        # TLS 1.3: the server's refusal may arrive after the client finished
        # its side of the handshake, so read until the connection drops.
        for _ in range(20):
            if c.loop(timeout=0.2) != paho.MQTT_ERR_SUCCESS:
                break
    except OSError:
        pass  # refused during the handshake (ssl.SSLError is an OSError)
    assert connacks == []
    # The broker is unharmed.
    assert mosquitto_pub(broker.port, "x", "ok", client_tls(certs)).returncode == 0


def test_client_certificate_optional(start_broker, certs):
    broker = start_tls(start_broker, certs, require=False)
    assert mosquitto_pub(broker.port, "x", "y", client_tls(certs, None)).returncode == 0
    assert mosquitto_pub(broker.port, "x", "y", client_tls(certs)).returncode == 0
    # A certificate that is presented must still verify.
    assert mosquitto_pub(broker.port, "x", "y", client_tls(certs, "rogue")).returncode != 0


def test_plain_tcp_client_on_tls_port_refused(start_broker, certs):
    broker = start_tls(start_broker, certs)
    assert mosquitto_pub(broker.port, "x", "plain").returncode != 0
    # A raw MQTT CONNECT gets no CONNACK: the connection is closed (after a
    # TLS alert at most).
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as s:
        s.sendall(bytes([0x10, 0x0C, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C,
                                                                    0x00, 0x00]))
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert not data.startswith(b"\x20"), data


def test_stalled_handshake_closed_by_connect_timeout(start_broker, certs):
    broker = start_broker(*tls_args(certs), "--connect-timeout-ms=300", shards=1,
                          listen="tls://127.0.0.1:0")
    with socket.create_connection(("127.0.0.1", broker.port), timeout=5) as silent, \
            socket.create_connection(("127.0.0.1", broker.port), timeout=5) as half:
        half.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
        start = time.monotonic()
        # Stalled handshakes do not hold the (single) shard: others get served.
        assert mosquitto_pub(broker.port, "x", "ok", client_tls(certs)).returncode == 0
        assert silent.recv(10) == b""
        assert half.recv(10) == b""
        assert time.monotonic() - start < 4


def test_bad_tls_flags_name_the_flag_and_file(certs, tmp_path):
    def run(*args):
        return subprocess.run([str(BINARY), "--shards=1", *args], capture_output=True, text=True,
                              timeout=10)

    result = run("--listen=tls://127.0.0.1:0", f"--tls-cert={certs / 'server.pem'}",
                 f"--tls-key={certs / 'client.key'}")
    assert result.returncode != 0
    assert "--tls-key" in result.stderr and "client.key" in result.stderr, result.stderr
    assert "does not match" in result.stderr, result.stderr
    result = run("--listen=tls://127.0.0.1:0", f"--tls-cert={tmp_path / 'missing.pem'}",
                 f"--tls-key={certs / 'server.key'}")
    assert result.returncode != 0
    assert "--tls-cert" in result.stderr and "missing.pem" in result.stderr, result.stderr
    result = run("--listen=127.0.0.1:0", f"--tls-cert={certs / 'server.pem'}")
    assert result.returncode != 0 and "tls://" in result.stderr, result.stderr


# --tls-identity-as-username: alice's certificate (CN=alice) is her user name.
IDENTITY_ACL = """\
user alice
topic readwrite alice/#
user bob
topic readwrite #
"""


@pytest.fixture
def identity_broker(start_broker, certs, tmp_path):
    """A TLS listener (certificate optional) with --tls-identity-as-username
    and a plain one for bob, whose password file has no alice."""
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "bob", "builder"], check=True)
    acl = tmp_path / "acl"
    acl.write_text(IDENTITY_ACL)
    broker = start_broker(*tls_args(certs, require=False), "--tls-identity-as-username",
                          f"--password-file={passwd}", f"--acl-file={acl}",
                          "--listen=127.0.0.1:0", shards=2, listen="tls://127.0.0.1:0")
    broker.tcp_port = int(broker.addresses[1].rpartition(":")[2])
    return broker


def tls_paho(certs, client_id, who="client", protocol=paho.MQTTv311, user=None):
    c = paho.Client(client_id=client_id, protocol=protocol)
    if who:
        c.tls_set(ca_certs=str(certs / "ca.pem"), certfile=str(certs / f"{who}.pem"),
                  keyfile=str(certs / f"{who}.key"))
    else:
        c.tls_set(ca_certs=str(certs / "ca.pem"))
    if user:
        c.username_pw_set(user, "not-checked")
    return c


def connack(client, port):
    """Connects; returns the CONNACK code (None: no CONNACK)."""
    codes = []
    done = threading.Event()

    def on_connect(_c, _u, _f, rc, properties=None):
        codes.append(rc.value if hasattr(rc, "value") else rc)
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(5)
    return codes[0] if codes else None


def test_certificate_identity_gets_alices_acl(identity_broker, certs):
    broker = identity_broker
    # bob (password, plain TCP) watches everything.
    got = []
    watcher = paho.Client(client_id="bob-watch")
    watcher.username_pw_set("bob", "builder")
    watcher.on_message = lambda _c, _u, m: got.append((m.topic, m.payload))
    subscribed = threading.Event()
    watcher.on_subscribe = lambda *a: subscribed.set()
    assert connack(watcher, broker.tcp_port) == 0
    watcher.subscribe("#", 1)
    assert subscribed.wait(5)
    # alice is in no password file and claims to be mallory: the certificate
    # decides. Her allowed topic goes through, the denied one does not.
    for topic in ("alice/hello", "bob/secret", "alice/done"):
        result = mosquitto_pub(broker.port, topic, "x",
                               [*client_tls(certs), "-u", "mallory", "-P", "wrong"])
        assert result.returncode == 0, result.stderr
    deadline = time.monotonic() + 5
    while ("alice/done", b"x") not in got and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [t for t, _ in got] == ["alice/hello", "alice/done"], got
    # Her subscriptions follow the same ACL (3.1.1 SUBACK 0x80 for a refusal).
    out = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port),
                          *client_tls(certs), "-t", "alice/#", "-t", "bob/#", "-d", "-C", "1",
                          "-W", "1"], capture_output=True, text=True, timeout=20)
    assert "Subscribed (mid: 1): 0, 128" in out.stdout, out
    # MQTT 5 tells the publisher: PUBACK 0x87 for the denied topic.
    out = mosquitto_pub(broker.port, "bob/x", "m", [*client_tls(certs), "-V", "5", "-d"])
    assert "RC:135" in out.stdout, out
    watcher.disconnect()
    watcher.loop_stop()


@pytest.mark.parametrize("protocol, refused", [(paho.MQTTv311, 5), (paho.MQTTv5, 0x87)])
def test_identity_as_username_refuses_tls_client_without_certificate(identity_broker, certs,
                                                                    protocol, refused):
    broker = identity_broker
    # A user name of its own (even one that has a password) does not help.
    c = tls_paho(certs, "no-cert", who=None, protocol=protocol, user="bob")
    assert connack(c, broker.port) == refused
    c.loop_stop()
    assert mosquitto_pub(broker.port, "alice/x", "y", client_tls(certs, None)).returncode != 0
    # With one, alice gets in over either protocol version.
    c = tls_paho(certs, "with-cert", protocol=protocol)
    assert connack(c, broker.port) == 0
    c.disconnect()
    c.loop_stop()
    # The plain TCP listener is untouched: bob's password still works there.
    c = paho.Client(client_id="bob-tcp", protocol=protocol)
    c.username_pw_set("bob", "builder")
    assert connack(c, broker.tcp_port) == 0
    c.disconnect()
    c.loop_stop()


def test_identity_as_username_needs_tls_ca(certs):
    result = subprocess.run([str(BINARY), "--shards=1", "--listen=tls://127.0.0.1:0",
                             f"--tls-cert={certs / 'server.pem'}",
                             f"--tls-key={certs / 'server.key'}", "--tls-identity-as-username"],
                            capture_output=True, text=True, timeout=10)
    assert result.returncode == 2
    assert "--tls-identity-as-username=true: needs --tls-ca" in result.stderr, result.stderr
