"""Fixtures that run the real shardmq binary for integration tests.

Each broker listens on a free 127.0.0.1 port (free_port); the port is read
from the start-up line. Every broker is stopped with SIGTERM at the end of
its test, and the test fails if it did not exit 0 in time (a graceful stop
is part of the contract).
"""
import os
import pathlib
import random
import re
import signal
import socket
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("SHARDMQ_BIN", ROOT / "build" / "tools" / "shardmq"))
LISTEN_LINE = re.compile(r"started: (\d+) shards, listening on (.*)$")


_handed_out = set()


def free_port():
    """A free loopback port for a broker or server that a test may stop and
    start again on the same port. Tests run two files at a time (tools/test:
    pytest-xdist), and a port that port 0 or a client's connect() takes from
    the kernel's ephemeral range (32768-60999) could be taken by the other
    file's clients while its broker is down. So the port comes from below that
    range, from a block of its own per xdist worker, and is never handed out
    twice in one run."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    base = 16000 + (index % 4) * 4000
    for _ in range(500):
        port = random.randrange(base, base + 4000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {base}-{base + 3999}")


class RunningBroker:
    """A shardmq process; its stderr is collected in `log_lines`."""

    def __init__(self, *args, shards=1, listen="127.0.0.1:0"):
        # listen=None: no --listen flag (a --config file names the listeners).
        # Port 0 becomes a free_port(), so a restart on the same port finds
        # it free.
        if listen == "127.0.0.1:0":
            listen = f"127.0.0.1:{free_port()}"
        listen_flag = [f"--listen={listen}"] if listen is not None else []
        self.args = [str(BINARY), f"--shards={shards}", *listen_flag, *args]
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.log_lines = []
        self.addresses = []
        started = threading.Event()

        def read_log():
            for line in self.process.stdout:
                self.log_lines.append(line.rstrip("\n"))
                match = LISTEN_LINE.search(line)
                if match:
                    self.shards = int(match.group(1))
                    self.addresses = [a.strip() for a in match.group(2).split(",")]
                    started.set()
            started.set()

        self.reader = threading.Thread(target=read_log, daemon=True)
        self.reader.start()
        if not started.wait(15) or not self.addresses:
            self.process.kill()
            raise RuntimeError("shardmq did not start:\n" + "\n".join(self.log_lines))
        host, _, port = self.addresses[0].rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)

    def stop(self, timeout=10, send_signal=True):
        """SIGTERM (unless the test sent it already), then wait; returns the
        exit code, or None if the broker had to be killed."""
        if send_signal and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        self.reader.join(5)
        return code

    def log(self):
        return "\n".join(self.log_lines)


@pytest.fixture
def start_broker():
    """Starts brokers on demand; stops each at the end and checks it exited 0."""
    brokers = []

    def start(*args, **kwargs):
        broker = RunningBroker(*args, **kwargs)
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        if broker.process.poll() is None:
            code = broker.stop()
            assert code == 0, f"shardmq exited with {code} on SIGTERM:\n{broker.log()[-3000:]}"
        # With a sanitizer build (SHARDMQ_BIN=build-asan/...), any report fails the test.
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer"):
            assert marker not in broker.log(), broker.log()[-6000:]


def wait_until(predicate, timeout=10.0, interval=0.02):
    """Polls predicate until true or the timeout passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def paho_connack(port, user=None, password=None, client_id="", protocol=paho.MQTTv311):
    """The CONNACK code a paho client gets: the 3.1.1 return code or the MQTT 5
    reason code; None if no CONNACK came within 5 s."""
    result = {}
    done = threading.Event()
    client = paho.Client(client_id=client_id, protocol=protocol)
    if user is not None:
        client.username_pw_set(user, password)

    def on_connect(c, userdata, flags, rc, properties=None):
        result["rc"] = rc.value if hasattr(rc, "value") else rc
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    done.wait(5)
    client.disconnect()
    client.loop_stop()
    return result.get("rc")


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs the test can fill; skipped where mounting is not allowed."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_up(directory):
    """Writes a file until the file system is full; returns its path."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler
