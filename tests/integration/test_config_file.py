"""--config: a TOML file sets listeners, limits and authentication on the real
daemon, command-line flags override it, a bad file stops start-up naming the
file, line and key, and SIGHUP applies a changed log level, ACL path and limits
(and logs, without applying, a change that needs a restart)."""
import shutil
import signal
import socket
import ssl
import subprocess

import pytest

import mqtt_raw as raw
from conftest import BINARY, ROOT, wait_until

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
EXAMPLE = ROOT / "tools" / "shardmq.example.toml"


def write_config(tmp_path, text, name="shardmq.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def run(*args):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=20)


def suback_codes(port, client_id, *filters, **connect_args):
    client = raw.connected(port, client_id, **connect_args)
    client.send(raw.subscribe(1, *[(f, 0) for f in filters]))
    codes = list(client.expect(raw.SUBACK).body[2:])
    client.close()
    return codes


def oversized_publish_closes(port, size):
    client = raw.connected(port, f"big-{size}")
    client.send(raw.publish("t/big", b"x" * size, qos=1, packet_id=1))
    if client.closed_by_broker(2):
        return True
    client.expect(raw.PUBACK)
    client.close()
    return False


def test_config_sets_listeners_and_limits(start_broker, tmp_path):
    config = write_config(tmp_path, """\
max_packet_size = 512
deny_subscribe = ["secret/#"]
log_level = "info"

[[listener]]
address = "127.0.0.1:0"
protocol = "tcp"

[[listener]]
address = "[::1]:0"
""")
    broker = start_broker(f"--config={config}", listen=None)
    assert len(broker.addresses) == 2, broker.log()
    assert broker.addresses[0].startswith("127.0.0.1:")
    assert broker.addresses[1].startswith("[::1]:")
    assert suback_codes(broker.port, "deny", "secret/#", "public/#") == [0x80, 0]
    assert oversized_publish_closes(broker.port, 1000)
    assert not oversized_publish_closes(broker.port, 300)


def test_config_unix_listener(start_broker, tmp_path):
    path = tmp_path / "mqtt.sock"
    config = write_config(tmp_path, f"""\
[[listener]]
address = "127.0.0.1:0"
max_connections = 1

[[listener]]
protocol = "unix"
path = "{path}"
mode = "0600"
""")
    broker = start_broker(f"--config={config}", "--sys-interval=0", listen=None)
    assert broker.addresses[1] == f"unix:{path}", broker.log()
    assert path.stat().st_mode & 0o777 == 0o600
    local = raw.Client.unix(path)
    assert local.connect("over-unix")[1] == 0
    # max_connections = 1 on the TCP listener: the second is closed.
    first = raw.connected(broker.port, "first")
    second = raw.Client(broker.port)
    second.send(raw.connect("second"))
    assert second.closed_by_broker()
    for client in (local, first, second):
        client.close()


def test_config_tls_listener(start_broker, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.pem"],
                   cwd=tmp_path, check=True, capture_output=True)
    config = write_config(tmp_path, f"""\
tls_cert = "{tmp_path / 'server.pem'}"
tls_key = "{tmp_path / 'server.key'}"

[[listener]]
address = "127.0.0.1:0"

[[listener]]
address = "127.0.0.1:0"
protocol = "tls"
""")
    broker = start_broker(f"--config={config}", listen=None)
    assert f"listener tcp://{broker.addresses[0]}:" in broker.log()
    assert f"listener tls://{broker.addresses[1]}:" in broker.log()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    port = int(broker.addresses[1].rpartition(":")[2])
    with context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5)) as tls:
        tls.sendall(raw.connect("over-tls"))
        assert tls.recv(4) == bytes([0x20, 2, 0, 0])  # CONNACK accepted


@pytest.mark.skipif(not MOSQUITTO_PASSWD, reason="needs mosquitto_passwd")
def test_config_sets_authentication(start_broker, tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(passwd), "alice", "wonderland"], check=True)
    acl = tmp_path / "acl"
    acl.write_text("user alice\ntopic readwrite alice/#\n")
    config = write_config(tmp_path, f"""\
password_file = "{passwd}"
acl_file = "{acl}"

[[listener]]
address = "127.0.0.1:0"
""")
    broker = start_broker(f"--config={config}", listen=None)
    assert f"password file {passwd} (1 users)" in broker.log()
    # A password file makes "auto" refuse anonymous clients, as the flag does.
    anonymous = raw.Client(broker.port)
    assert anonymous.connect("anon")[1] == 5
    assert suback_codes(broker.port, "alice", "alice/x", "bob/x", username="alice",
                        password="wonderland") == [0, 0x80]


def test_flags_override_the_file(start_broker, tmp_path):
    config = write_config(tmp_path, """\
max_packet_size = 512
deny_subscribe = ["secret/#"]

[[listener]]
address = "[::1]:0"
""")
    # --listen (given by start_broker) replaces the file's listeners.
    broker = start_broker("--max-packet-size=4096", "--deny-subscribe=other/#",
                          f"--config={config}")
    assert len(broker.addresses) == 1 and broker.addresses[0].startswith("127.0.0.1:")
    assert not oversized_publish_closes(broker.port, 1000)
    assert suback_codes(broker.port, "over", "secret/#", "other/#") == [0, 0x80]


def test_example_config_starts_the_broker(start_broker):
    # The example listens on 127.0.0.1:1883; --listen moves it to a free port.
    broker = start_broker(f"--config={EXAMPLE}")
    assert broker.port > 0


@pytest.mark.parametrize("text, line, message", [
    ("log_level = \"info\"\nmax_packets = 10\n", 2,
     "max_packets: unknown key"),
    ("max_packet_size = \"big\"\n", 1,
     "max_packet_size: must be an integer, not a string"),
    ("\nmax_packet_size = 10\n", 2,
     "max_packet_size = 10: must be between 64 and 268435460"),
    ("log_level = \"loud\"\n", 1,
     "log_level = loud: must be debug, info, warning or error"),
    ("queue_qos0_offline = \"yes\"\n", 1,
     "queue_qos0_offline: must be true or false, not a string"),
    ("shards = 1\nmax_inflight 5\n", 2, "syntax error: "),
    ("[[listener]]\naddress = \"127.0.0.1:1883\"\nprotocol = \"quic\"\n", 3,
     "listener.protocol: \"quic\" is not a protocol this broker serves (tcp or tls or ws or wss "
     "or unix)"),
    ("[[listener]]\naddress = \"127.0.0.1:1883\"\npath = \"/mqtt\"\n", 3,
     "listener.path: only ws, wss and unix listeners have a path"),
    ("[[listener]]\nprotocol = \"unix\"\npath = \"/tmp/x.sock\"\nmode = 660\n", 4,
     "listener.mode: must be a string of octal digits such as \"0660\", not an integer"),
    ("[[listener]]\nprotocol = \"unix\"\naddress = \"/tmp/x.sock\"\n", 3,
     "listener.address: a unix listener has path = "),
    ("[[listener]]\naddress = \"127.0.0.1:0\"\nmax_connections = -5\n", 3,
     "listener.max_connections: -5 is out of range"),
    ("[[listener]]\naddress = \"1.2.3:80\"\n", 2,
     "listener.address = 1.2.3:80: \"1.2.3:80\": \"1.2.3\" is not an IPv4 or IPv6"),
])
def test_bad_file_stops_startup_naming_file_line_and_key(tmp_path, text, line, message):
    config = write_config(tmp_path, text)
    result = run(f"--config={config}")
    assert result.returncode == 2, result.stderr
    assert f"shardmq: {config}:{line}: {message}" in result.stderr, result.stderr


def test_missing_config_file_stops_startup():
    result = run("--config=/nonexistent/shardmq.toml")
    assert result.returncode == 2
    assert "/nonexistent/shardmq.toml: cannot read the config file" in result.stderr


def test_sighup_applies_log_level_and_acl_path(start_broker, tmp_path):
    acl_a = tmp_path / "acl-a"
    acl_a.write_text("topic readwrite a/#\n")
    acl_b = tmp_path / "acl-b"
    acl_b.write_text("topic readwrite b/#\n")
    template = """\
log_level = "{level}"
acl_file = "{acl}"
allow_anonymous = true
batch_wait_us = {wait}

[[listener]]
address = "127.0.0.1:0"
"""
    config = write_config(tmp_path, template.format(level="info", acl=acl_a, wait=0))
    broker = start_broker(f"--config={config}", listen=None)
    assert f"anonymous clients allowed: {config}:3: allow_anonymous = true" in broker.log()
    assert suback_codes(broker.port, "before", "a/x", "b/x") == [0, 0x80]

    config.write_text(template.format(level="debug", acl=acl_b, wait=100))
    broker.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: f"SIGHUP: reloaded {config}" in broker.log(), 5), broker.log()
    assert "log_level info -> debug" in broker.log()
    assert f"acl_file {acl_a} -> {acl_b}" in broker.log()
    assert f"batch_wait_us changed in {config} and needs a restart" in broker.log()
    # The new ACL is in force.
    assert suback_codes(broker.port, "after", "a/x", "b/x") == [0x80, 0]

    # A file that no longer parses changes nothing.
    config.write_text("log_level = \"info\"\nno_such_key = 1\n")
    broker.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "not reloaded, nothing changed" in broker.log(), 5), broker.log()
    assert f"{config}:2: no_such_key: unknown key" in broker.log()
    assert suback_codes(broker.port, "still", "a/x", "b/x") == [0x80, 0]


def test_sighup_applies_limits(start_broker, tmp_path):
    template = """\
max_subscriptions_per_client = {subs}
max_packet_size = {size}
max_qos = {qos}

[[listener]]
address = "127.0.0.1:0"
"""
    config = write_config(tmp_path, template.format(subs=10, size=4096, qos=2))
    broker = start_broker(f"--config={config}", listen=None)
    connected = raw.connected(broker.port, "connected")
    connected.send(raw.subscribe(1, ("a", 0), ("b", 0)))
    assert list(connected.expect(raw.SUBACK).body[2:]) == [0, 0]

    config.write_text(template.format(subs=2, size=1024, qos=2))
    broker.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: f"SIGHUP: reloaded {config}" in broker.log(), 5), broker.log()
    assert "max_subscriptions_per_client: 10 -> 2" in broker.log()
    assert "max_packet_size: 4096 -> 1024 (new connections only)" in broker.log()
    assert "needs a restart" not in broker.log()
    # The client connected before meets the new quota at its next SUBSCRIBE...
    connected.send(raw.subscribe(2, ("c", 0)))
    assert list(connected.expect(raw.SUBACK).body[2:]) == [0x80]
    # ...and keeps the packet size it connected under; new clients get the new one.
    connected.send(raw.publish("t/big", b"x" * 1500, qos=1, packet_id=3))
    assert connected.expect(raw.PUBACK).packet_id() == 3
    assert oversized_publish_closes(broker.port, 1500)

    # A value out of range changes nothing, not even the valid keys beside it.
    config.write_text(template.format(subs=5, size=1024, qos=3))
    broker.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "not reloaded, nothing changed" in broker.log(), 5), broker.log()
    assert f"{config}:3: max_qos = 3" in broker.log()
    assert suback_codes(broker.port, "later", "a", "b", "c") == [0, 0, 0x80]
    connected.close()


def test_help_describes_config():
    result = run("--help")
    assert result.returncode == 0
    assert "--config (default: )" in result.stdout
    assert "re-reads --config" in result.stdout
