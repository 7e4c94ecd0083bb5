"""The daemon's command line: --help, bad values that must stop start-up
with a message naming the flag and the value, and the defaults that decide
who may connect (loopback listener, anonymous access)."""
import subprocess

import paho.mqtt.client as paho
import pytest

from conftest import BINARY, paho_connack


def run(*args):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=20)


def test_help_lists_every_flag():
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--shards", "--listen", "--cpu-affinity", "--max-connections", "--log-level",
                 "--max-packet-size", "--max-inflight", "--max-queued-messages",
                 "--max-queued-bytes", "--queue-qos0-offline", "--max-outbound-bytes",
                 "--max-subscriptions-per-client", "--max-topic-length", "--max-topic-levels",
                 "--connect-timeout-ms"):
        assert flag in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--shards=-1"], "--shards=-1: must be between 0 and 1024"),
    (["--shards=abc"], "--shards=abc: not a valid value"),
    (["--listen=1.2.3:80"], "--listen=1.2.3:80: \"1.2.3:80\": \"1.2.3\" is not an IPv4 or IPv6"),
    (["--listen", "127.0.0.1:99999"], "is not a port number"),
    (["--cpu-affinity=4-2"], "--cpu-affinity=4-2: \"4-2\" is not a CPU number or range"),
    (["--cpu-affinity=9999"], "--cpu-affinity=9999:"),
    (["--max-connections=0"], "--max-connections=0: must be at least 1"),
    (["--log-level=loud"], "--log-level=loud: must be debug, info, warning or error"),
    (["--no-such-flag=1"], "unknown flag --no-such-flag"),
    (["stray"], "unexpected argument \"stray\""),
    (["--shards"], "--shards needs a value"),
    (["--max-inflight=0"], "--max-inflight=0: must be between 1 and 65535"),
    (["--max-packet-size=10"], "--max-packet-size=10: must be between 64 and 268435460"),
    (["--max-topic-levels=0"], "--max-topic-levels=0: must be between 1 and 65535"),
    (["--queue-qos0-offline=maybe"], "--queue-qos0-offline=maybe: not a valid value"),
])
def test_bad_flag_stops_startup_naming_flag_and_value(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_listen_flag_repeats(start_broker):
    broker = start_broker("--listen=[::1]:0", listen="127.0.0.1:0")
    assert len(broker.addresses) == 2
    assert any(a.startswith("[::1]:") for a in broker.addresses)
    assert any(a.startswith("127.0.0.1:") for a in broker.addresses)


def test_a_port_another_broker_listens_on_is_refused(start_broker):
    """The shards share their port with SO_REUSEPORT, which would also let a
    second broker started by mistake take some of the first one's clients:
    start-up refuses instead, naming the address."""
    first = start_broker(shards=2)
    result = subprocess.run([str(BINARY), "--shards=2", f"--listen=127.0.0.1:{first.port}"],
                            capture_output=True, text=True, timeout=15)
    assert result.returncode != 0
    assert f"port {first.port}" in result.stderr and "another process listens there" in \
        result.stderr, result.stderr
    assert paho_connack(first.port) == 0  # the first one is untouched


def test_bare_boolean_flag_turns_it_on(start_broker):
    broker = start_broker("--queue-qos0-offline")
    assert broker.port > 0


def test_default_listener_is_loopback():
    result = run("--help")
    assert "--listen (default: 127.0.0.1:1883)" in result.stdout, result.stdout


def anonymous_connack(port, protocol=paho.MQTTv311):
    """The CONNACK code an anonymous paho client gets (None: no CONNACK)."""
    return paho_connack(port, client_id="anon", protocol=protocol)


def anonymous_line(broker):
    return next(line for line in broker.log_lines if "anonymous clients allowed:" in line
                or "anonymous clients refused:" in line)


def test_anonymous_allowed_on_loopback_only_listener(start_broker):
    broker = start_broker(listen="127.0.0.1:0")
    assert anonymous_connack(broker.port) == 0
    assert anonymous_line(broker).endswith(
        "anonymous clients allowed: every listener is loopback and no --password-file was "
        "given"), broker.log()


@pytest.mark.parametrize("protocol, refused", [(paho.MQTTv311, 5), (paho.MQTTv5, 0x87)])
def test_anonymous_refused_by_default_on_network_listener(start_broker, protocol, refused):
    # Bound to every interface, reached through loopback: the listener is
    # what decides, not the path this client took.
    broker = start_broker(listen="0.0.0.0:0")
    assert anonymous_connack(broker.port, protocol) == refused
    assert anonymous_line(broker).endswith(
        "anonymous clients refused: listener 0.0.0.0:0 is not loopback and no "
        "--allow-anonymous was given"), broker.log()


def test_one_network_listener_among_loopback_ones_refuses_anonymous(start_broker):
    broker = start_broker("--listen=[::]:0", listen="127.0.0.1:0")
    assert anonymous_connack(broker.port) == 5
    assert "listener [::]:0 is not loopback" in anonymous_line(broker), broker.log()


def test_allow_anonymous_opens_a_network_listener(start_broker):
    broker = start_broker("--allow-anonymous", listen="0.0.0.0:0")
    assert anonymous_connack(broker.port) == 0
    assert anonymous_line(broker).endswith("anonymous clients allowed: --allow-anonymous")
    assert any("anyone who can reach a listener may connect" in line
               for line in broker.log_lines), broker.log()


def test_allow_anonymous_false_closes_loopback(start_broker):
    broker = start_broker("--allow-anonymous=false", listen="127.0.0.1:0")
    assert anonymous_connack(broker.port) == 5
    assert anonymous_line(broker).endswith("anonymous clients refused: --allow-anonymous=false")
