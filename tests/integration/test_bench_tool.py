"""shardmq-bench against the real broker and against a fake one that
misbehaves on purpose: the bench must report 0 lost when all is well, and
must notice (and exit non-zero on) a dropped, duplicated or reordered
message, a refused CONNECT and an unreachable broker."""
import asyncio
import json
import os
import socket
import struct
import subprocess

import pytest

from conftest import ROOT

BENCH = os.environ.get("SHARDMQ_BENCH_BIN", str(ROOT / "build" / "tools" / "bench" / "shardmq-bench"))
EXIT_INTEGRITY, EXIT_BROKER = 1, 3


def run_bench(*args, timeout=20):
    proc = subprocess.run([BENCH, "--json", "--progress=false", *args], capture_output=True,
                          text=True, timeout=timeout)
    result = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, result, proc.stderr


@pytest.mark.parametrize("version", [4, 5])
def test_p2p_qos1_against_shardmq_loses_nothing(start_broker, version):
    broker = start_broker(shards=2)
    code, result, err = run_bench("--scenario=p2p", "--pairs=5", "--qos=1", "--rate=1000",
                                  f"--mqtt-version={version}", f"--port={broker.port}",
                                  "--duration=2s", "--warmup=200ms",
                                  f"--broker-pid={broker.process.pid}")
    assert code == 0, err
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["reordered"] == 0
    assert result["streams"] == 5
    assert result["received_total"] == result["expected_total"] == result["sent_total"]
    # 5 publishers x 1000 msg/s x 2 s, give or take a tick of the schedule.
    assert 9000 <= result["delivered_in_window"] <= 10010
    assert result["latency_us"]["count"] == result["delivered_in_window"]
    assert result["broker"]["rss_end"] > 0


def test_fanout_qos1_against_shardmq_loses_nothing(start_broker):
    broker = start_broker(shards=2)
    code, result, err = run_bench("--scenario=fanout", "--publishers=1", "--subscribers=5",
                                  "--qos=1", "--rate=2000", f"--port={broker.port}",
                                  "--duration=2s", "--warmup=200ms")
    assert code == 0, err
    assert result["lost"] == 0 and result["duplicated"] == 0 and result["reordered"] == 0
    assert result["streams"] == 5
    assert result["received_total"] == 5 * result["sent_total"]


def test_unreachable_broker_fails_loudly():
    with socket.socket() as s:  # A port nobody listens on.
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, result, err = run_bench("--scenario=p2p", f"--port={port}", "--duration=1s")
    assert code == EXIT_BROKER
    assert f"127.0.0.1:{port}" in err
    assert "Connection refused" in err
    assert result["error"]


# A fake broker: just enough MQTT 3.1.1 to serve the bench, plus one fault
# applied to the PUBLISHes it forwards.

def varint(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(first_byte, body):
    return bytes([first_byte]) + varint(len(body)) + body


async def read_packet(reader):
    first = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first, await reader.readexactly(length)


class FakeBroker:
    """fault: None, "drop", "dup", "reorder" (applied to the 10th forwarded
    PUBLISH) or "refuse" (CONNACK 0x05, not authorised)."""

    def __init__(self, fault):
        self.fault = fault
        self.subscribers = []  # (filter prefix, writer)
        self.forwarded = 0
        self.held = None

    async def start(self, backlog=100, serve_after=0.0):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(backlog)  # asyncio would listen only once it serves
        self.server = await asyncio.start_server(self.serve, sock=sock, backlog=backlog,
                                                 start_serving=serve_after == 0)
        self.port = sock.getsockname()[1]
        if serve_after:
            asyncio.get_running_loop().call_later(
                serve_after, lambda: asyncio.ensure_future(self.server.start_serving()))

    def forward(self, topic, payload):
        out = packet(0x30, struct.pack("!H", len(topic)) + topic + payload)  # QoS 0.
        for prefix, writer in self.subscribers:
            if topic.startswith(prefix):
                self.forwarded += 1
                nth = self.forwarded == 10
                if nth and self.fault == "drop":
                    continue
                if nth and self.fault == "reorder":
                    self.held = (writer, out)  # Goes out after the next one.
                    continue
                writer.write(out)
                if nth and self.fault == "dup":
                    writer.write(out)
                if self.held and self.forwarded == 11:
                    self.held[0].write(self.held[1])
                    self.held = None

    async def serve(self, reader, writer):
        try:
            while True:
                first, body = await read_packet(reader)
                kind = first >> 4
                if kind == 1:  # CONNECT
                    writer.write(bytes([0x20, 2, 0, 5 if self.fault == "refuse" else 0]))
                elif kind == 8:  # SUBSCRIBE: one filter, "a/b/c" or "a/b/+"
                    pid = body[:2]
                    flen = struct.unpack("!H", body[2:4])[0]
                    flt = body[4:4 + flen]
                    self.subscribers.append((flt.rstrip(b"+#"), writer))
                    writer.write(packet(0x90, pid + bytes([0])))
                elif kind == 3:  # PUBLISH
                    qos = (first >> 1) & 3
                    tlen = struct.unpack("!H", body[:2])[0]
                    topic, rest = body[2:2 + tlen], body[2 + tlen:]
                    if qos:
                        writer.write(packet(0x40 if qos == 1 else 0x50, rest[:2]))
                        rest = rest[2:]
                    self.forward(topic, rest)
                elif kind == 6:  # PUBREL
                    writer.write(packet(0x70, body[:2]))
                elif kind == 12:  # PINGREQ
                    writer.write(bytes([0xD0, 0]))
                elif kind == 14:  # DISCONNECT
                    break
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def bench_against_fake(fault, *args, **start):
    fake = FakeBroker(fault)
    await fake.start(**start)
    proc = await asyncio.create_subprocess_exec(
        BENCH, "--json", "--progress=false", f"--port={fake.port}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    fake.server.close()
    return proc.returncode, json.loads(out), err.decode()


BENCH_ARGS = ("--scenario=p2p", "--pairs=1", "--qos=1", "--rate=200", "--duration=1s",
              "--warmup=0s", "--drain=1s")


@pytest.mark.parametrize("fault,field", [("drop", "lost"), ("dup", "duplicated"),
                                         ("reorder", "reordered")])
def test_bench_catches_a_misbehaving_broker(fault, field):
    code, result, err = asyncio.run(bench_against_fake(fault, *BENCH_ARGS))
    assert code == EXIT_INTEGRITY, err
    assert result[field] == 1
    for other in {"lost", "duplicated", "reordered"} - {field}:
        assert result[other] == 0, result
    assert "FAILED" in err


def test_honest_fake_broker_passes():
    code, result, err = asyncio.run(bench_against_fake(None, *BENCH_ARGS))
    assert code == 0, err
    assert result["lost"] == result["duplicated"] == result["reordered"] == 0


def test_qos0_loss_is_reported_but_fails_only_with_strict():
    args = [a.replace("--qos=1", "--qos=0") for a in BENCH_ARGS]
    code, result, _ = asyncio.run(bench_against_fake("drop", *args))
    assert code == 0 and result["lost"] == 1
    code, result, _ = asyncio.run(bench_against_fake("drop", *args, "--strict"))
    assert code == EXIT_INTEGRITY and result["lost"] == 1


def test_refused_connect_fails_loudly():
    code, result, err = asyncio.run(bench_against_fake("refuse", *BENCH_ARGS))
    assert code == EXIT_BROKER
    assert "refused CONNECT" in err and "127.0.0.1:" in err


def test_conn_storm_pipelines_connect_and_reports_broker_cpu(start_broker):
    broker = start_broker(shards=1)
    code, result, err = run_bench("--scenario=conn", "--connections=2000",
                                  f"--port={broker.port}", f"--broker-pid={broker.process.pid}")
    assert code == 0, err
    assert result["connections"] == 2000
    # On loopback the handshake is over inside connect(): CONNECT goes at once.
    assert result["pipelined_connects"] > 1000
    assert result["broker"]["cpu_us_per_conn"] >= 0
    assert result["broker"]["bytes_per_connection"] > 0


def test_conn_waits_for_the_handshake_when_connect_has_not_finished():
    # A listener with a backlog of 1 that does not accept for a while: later
    # SYNs are dropped, so those sockets are still connecting when the bench
    # first tries to send CONNECT (EAGAIN) and must wait for EPOLLOUT.
    code, result, err = asyncio.run(bench_against_fake(
        None, "--scenario=conn", "--connections=6", backlog=1, serve_after=0.3))
    assert code == 0, err
    assert result["connections"] == 6
    assert result["pipelined_connects"] < 6


def test_large_payload_publisher_keeps_going(start_broker):
    # 16 KiB payloads: 64 of them fill the 1 MiB output bound. The publisher
    # must resume once its output drains (it used to stall after 64).
    broker = start_broker(shards=1)
    code, result, err = run_bench("--scenario=p2p", "--pairs=1", "--payload=16384",
                                  f"--port={broker.port}", "--duration=1s", "--warmup=0s")
    assert code == 0, err
    assert result["sent_total"] > 1000  # QoS 0: the broker may drop some for the slow reader
    code, result, err = run_bench("--scenario=p2p", "--pairs=1", "--payload=16384", "--qos=1",
                                  "--inflight=200", f"--port={broker.port}", "--duration=1s",
                                  "--warmup=0s")
    assert code == 0, err
    assert result["sent_total"] > 1000
    assert result["lost"] == result["duplicated"] == result["reordered"] == 0
