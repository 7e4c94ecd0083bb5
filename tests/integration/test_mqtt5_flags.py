"""Daemon flags of the MQTT 5 connection lifecycle: --help lists them, bad
values stop start-up with a message naming the flag, good values start."""
import subprocess

import pytest

from conftest import BINARY

import mqtt_raw as raw


def run(*args):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=20)


def test_help_lists_the_mqtt5_flags():
    result = run("--help")
    assert result.returncode == 0
    for flag in ("--max-session-expiry", "--max-keepalive", "--receive-maximum", "--max-qos",
                 "--retain-available", "--redirect", "--server-reference",
                 "--response-information", "--auth-method-demo"):
        assert flag in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--max-session-expiry=0"], "--max-session-expiry=0: must be at least 1"),
    (["--max-session-expiry=-5"], "--max-session-expiry=-5: not a valid value"),
    (["--max-keepalive=0"], "--max-keepalive=0: must be between 1 and 65535"),
    (["--max-keepalive=70000"], "--max-keepalive=70000: must be between 1 and 65535"),
    (["--receive-maximum=0"], "--receive-maximum=0: must be between 1 and 65535"),
    (["--max-qos=3"], "--max-qos=3: must be between 0 and 2"),
    (["--retain-available=perhaps"], "--retain-available=perhaps: not a valid value"),
    (["--redirect=sideways"], "--redirect=sideways: must be none, moved or use-another"),
    (["--redirect=moved"], "--redirect=moved: needs --server-reference"),
    (["--server-reference=other:1883"], "--server-reference=other:1883: has no effect without "
                                        "--redirect"),
    (["--redirect=moved", "--server-reference=a\tb"], "--server-reference=a\tb: must not contain"),
])
def test_bad_mqtt5_flag_stops_startup(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr


def test_good_mqtt5_flags_start(start_broker):
    broker = start_broker("--max-session-expiry=3600", "--max-keepalive=300",
                          "--receive-maximum=100", "--max-qos=1", "--retain-available=false",
                          "--response-information=resp/", "--auth-method-demo=s")
    client = raw.Client(broker.port)
    assert client.connect("flags", version=4) == b"\x00\x00"
