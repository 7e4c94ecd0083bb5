"""Bad clients against the real binary, beside good ones (issue 7).

1,000 connections from 50 loopback addresses send garbage, half a CONNECT,
half a PUBLISH after a good CONNECT, or nothing; one address opens more
connections than --max-connections-per-address allows; a publisher floods
far over --max-publish-rate. Meanwhile 10 well-behaved paho clients exchange
QoS 1 messages in a ring. The good clients must lose nothing; every bad
socket must be closed by the broker (protocol error, connect timeout or
keep-alive), its descriptors must return to where they were, and its memory
must come back to its baseline.

The baseline is measured after two warm-up rounds of the same abuse: the
first rounds leave the allocator (mimalloc) pages it keeps for reuse (the
broker's RSS goes from about 10 MiB cold to a plateau near 20 MiB after three
or four rounds, then stays; neither mimalloc's reset/decommit options nor a
forced mi_collect return them), so comparing with the cold broker would
measure the allocator, not us. What must hold is that abuse leaves nothing
behind: a broker that leaked per bad connection would grow on every round.
LeakSanitizer checks the same run for leaks in tools/test's ASan step.
"""
import os
import random
import resource
import socket
import threading
import time

import paho.mqtt.client as paho
import pytest

import mqtt_raw as raw
from conftest import wait_until

GOOD_CLIENTS = 10
GOOD_MESSAGES = 200  # per good client, QoS 1
BAD_ADDRESSES = [f"127.0.0.{i}" for i in range(10, 60)]  # 50 sources x 20 sockets
PER_ADDRESS = 50
HOG_ADDRESS = "127.0.0.200"
HOG_SOCKETS = 80  # 30 over --max-connections-per-address
PUBLISH_RATE = 200
CONNECT_TIMEOUT_MS = 2000
BAD_KEEPALIVE = 2  # seconds: a stalled half packet is closed after 3 s


def broker_args():
    return [
        f"--connect-timeout-ms={CONNECT_TIMEOUT_MS}",
        f"--max-connections-per-address={PER_ADDRESS}",
        "--max-connect-rate-per-address=500",
        f"--max-publish-rate={PUBLISH_RATE}",
        "--max-packet-size=65536",
    ]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_from(source, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        pytest.skip(f"needs {needed} open files, the limit is {soft}")


class GoodRing:
    """10 paho clients; client i publishes to good/{i+1} and subscribes to good/{i}."""

    def __init__(self, port):
        self.port = port
        self.received = [[] for _ in range(GOOD_CLIENTS)]
        self.clients = []
        self.lock = threading.Lock()
        for i in range(GOOD_CLIENTS):
            client = paho.Client(client_id=f"good-{i}", protocol=paho.MQTTv311)
            client.on_message = self._receiver(i)
            client.connect("127.0.0.1", port, keepalive=30)
            client.loop_start()
            result, _ = client.subscribe(f"good/{i}", qos=1)
            assert result == paho.MQTT_ERR_SUCCESS
            self.clients.append(client)
        # SUBACKs: a message published before them could miss its subscriber.
        time.sleep(0.5)

    def _receiver(self, index):
        def on_message(_client, _userdata, message):
            with self.lock:
                self.received[index].append(message.payload.decode())
        return on_message

    def exchange(self, count, tag, pause=0.0):
        """Each client sends `count` QoS 1 messages to the next one."""
        infos = []
        for n in range(count):
            for i, client in enumerate(self.clients):
                infos.append(client.publish(f"good/{(i + 1) % GOOD_CLIENTS}",
                                            f"{tag}-{i}-{n}", qos=1))
            if pause:
                time.sleep(pause)
        for info in infos:
            info.wait_for_publish(timeout=30)
            assert info.is_published(), "a good client's QoS 1 PUBLISH was not acknowledged"

    def expect(self, count, tag):
        def complete():
            with self.lock:
                return all(sum(1 for p in got if p.startswith(tag + "-")) >= count
                           for got in self.received)
        assert wait_until(complete, timeout=30), "good clients did not get all their messages"
        with self.lock:
            for i, got in enumerate(self.received):
                sender = (i - 1) % GOOD_CLIENTS
                mine = [p for p in got if p.startswith(tag + "-")]
                # Nothing lost, nothing duplicated, in order.
                assert mine == [f"{tag}-{sender}-{n}" for n in range(count)], (i, mine[:5])

    def close(self):
        for client in self.clients:
            client.disconnect()
            client.loop_stop()


def bad_connections(port):
    """Opens the 1,000 bad sockets; returns them (the caller keeps them open)."""
    rng = random.Random(7)
    sockets = []
    kinds = ["silent", "garbage", "half-connect", "half-publish"]
    for n in range(1000):
        source = BAD_ADDRESSES[n % len(BAD_ADDRESSES)]
        kind = kinds[n % len(kinds)]
        sock = open_from(source, port)
        if kind == "garbage":
            sock.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))))
        elif kind == "half-connect":
            whole = raw.connect(f"half-{n}")
            sock.sendall(whole[: len(whole) // 2])
        elif kind == "half-publish":
            sock.sendall(raw.connect(f"stall-{n}", keepalive=BAD_KEEPALIVE))
            whole = raw.publish("good/0", b"x" * 200, qos=1, packet_id=1)
            sock.sendall(whole[: len(whole) // 2])
        sockets.append((kind, sock))
    return sockets


def closed_by_broker(sock, timeout):
    """True if the broker closes `sock` within `timeout` (whatever it sent first)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


class Flooder:
    """Publishes QoS 0 as fast as the socket takes it; counts what a subscriber gets."""

    def __init__(self, port, name="flooder"):
        self.port = port
        self.sent = 0
        self.delivered = 0
        self.stop = threading.Event()
        self.subscriber = raw.subscribed(port, f"{name}-watch", ("flood/#", 0))
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(raw.connect(name))
        assert self.sock.recv(4)[:1] == b"\x20"
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=self._flood, daemon=True),
                        threading.Thread(target=self._count, daemon=True)]
        for thread in self.threads:
            thread.start()

    def _flood(self):
        message = raw.publish("flood/x", b"f" * 100)
        batch = message * 100
        self.sock.setblocking(False)
        while not self.stop.is_set():
            try:
                self.sock.send(batch)
                self.sent += 100
            except BlockingIOError:
                time.sleep(0.005)  # throttled: its socket is full
            except (ConnectionResetError, BrokenPipeError):
                return  # disconnected for flooding faster than the throttle holds

    def _count(self):
        sock = self.subscriber.sock
        sock.settimeout(0.2)
        buffer = b""
        while not self.stop.is_set():
            try:
                data = sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                return
            buffer += data
            # Count whole PUBLISH packets (fixed header 0x30).
            while len(buffer) >= 2:
                try:
                    length, used = raw.read_varint(buffer, 1)
                except IndexError:
                    break  # the length itself is incomplete
                end = 1 + used + length
                if len(buffer) < end:
                    break
                if buffer[0] >> 4 == raw.PUBLISH:
                    self.delivered += 1
                buffer = buffer[end:]

    def finish(self):
        """Stops; returns the seconds from CONNACK to the last count."""
        self.stop.set()
        for thread in self.threads:
            thread.join(5)
        elapsed = time.monotonic() - self.started
        self.sock.close()
        self.subscriber.close()
        return elapsed


def abuse_round(broker, ring, tag, baseline_fds):
    """One round of abuse beside the good clients; asserts what each must see.
    Returns the RSS sampled while the bad connections were open."""
    pid = broker.process.pid
    flood = Flooder(broker.port, f"{tag}-flooder")
    # The good clients talk through the whole abuse, a message every 10 ms each.
    good = threading.Thread(target=ring.exchange, args=(GOOD_MESSAGES, tag, 0.01))
    good.start()
    bad = bad_connections(broker.port)
    hogs = [open_from(HOG_ADDRESS, broker.port) for _ in range(HOG_SOCKETS)]
    peak_rss = rss_kib(pid)
    time.sleep(2.0)
    elapsed = flood.finish()
    good.join(60)
    assert not good.is_alive()
    ring.expect(GOOD_MESSAGES, tag)

    # The flood was held to its rate: a burst of one second's worth, then
    # the rate (a bound the throttle sets, whatever this machine's speed).
    assert flood.sent > 2 * PUBLISH_RATE * elapsed, "the flood never went over its limit"
    assert flood.delivered <= PUBLISH_RATE * (elapsed + 1) + 1, (flood.delivered, elapsed)
    assert flood.delivered >= PUBLISH_RATE / 2, "the throttled publisher was not served"

    # Every bad socket is closed by the broker: garbage at once (protocol
    # error), silent and half CONNECTs after the connect timeout, a half
    # PUBLISH after 1.5 x its keep-alive; the hog's excess on accept.
    for kind, sock in bad:
        assert closed_by_broker(sock, 10), f"a {kind} connection stayed open"
        sock.close()
    refused = sum(1 for sock in hogs if closed_by_broker(sock, 0.5))
    assert refused >= HOG_SOCKETS - PER_ADDRESS, refused
    for sock in hogs:
        sock.close()

    # Descriptors come back exactly: the flooder's connection goes within
    # 10 s (over its rate that long, or flooding faster than the throttle
    # holds, it is disconnected).
    assert wait_until(lambda: open_fds(pid) == baseline_fds, timeout=20), open_fds(pid)
    return peak_rss


def test_bad_clients_do_not_disturb_good_ones(start_broker):
    raise_fd_limit(1500)
    broker = start_broker(*broker_args(), shards=2)
    pid = broker.process.pid
    ring = GoodRing(broker.port)
    try:
        ring.exchange(20, "first")
        ring.expect(20, "first")
        baseline_fds = open_fds(pid)
        # Two warm-up rounds set the memory baseline (see the module comment);
        # the third must leave nothing behind.
        abuse_round(broker, ring, "warm1", baseline_fds)
        abuse_round(broker, ring, "warm2", baseline_fds)
        time.sleep(1.0)
        baseline_rss = rss_kib(pid)
        peak_rss = abuse_round(broker, ring, "main", baseline_fds)
        # Each kind of limit hit was logged (at most once a second each).
        log = broker.log()
        for line in ("--max-connections-per-address", "throttling", "disconnecting",
                     "keep-alive timeout"):
            assert line in log, line
        ring.exchange(20, "after")
        ring.expect(20, "after")
        if "detect_leaks" in os.environ.get("ASAN_OPTIONS", ""):
            return  # ASan's quarantine holds freed memory; LeakSanitizer checks at exit
        # Slack for allocator page fragmentation; a leak of 3 KiB per bad
        # connection would already exceed it.
        assert wait_until(lambda: rss_kib(pid) <= baseline_rss + 3072, timeout=15), (
            f"RSS {rss_kib(pid)} KiB after the abuse, baseline {baseline_rss} KiB, "
            f"peak seen {peak_rss} KiB")
    finally:
        ring.close()
