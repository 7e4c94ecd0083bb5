#!/usr/bin/env python3
"""Raw-socket MQTT 3.1.1 loaders for bench/durability (not a general client).

Fills a broker with durable state fast enough for 100,000 sessions and
1,000,000 retained messages, with nothing but the standard library:

  durability_load.py sessions --port P --count 100000 [--prefix dur-s]
      N persistent sessions (Clean Session 0): session i subscribes at QoS 1
      to <prefix>/s/<i>, odd ones also to <prefix>/g/<i % 1000>, then
      DISCONNECTs and waits for the broker to close (so TIME_WAIT stays on
      the broker's side and the bench's ports are not used up). asyncio,
      --concurrency clients at a time.
  durability_load.py publish --port P --topics T1,T2 | --topic-range FMT:N
      QoS 1 PUBLISHes, pipelined (--window unacknowledged), one connection;
      --retain makes them retained.

Everything is bounded: each connection has a --timeout, and the loaders exit
on the first broker error. Prints one JSON line with counts and seconds.
"""
import argparse
import asyncio
import json
import socket
import sys
import time


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_str(s):
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def connect_packet(client_id, clean, keepalive=0):
    body = mqtt_str("MQTT") + bytes([4, 0x02 if clean else 0x00]) + keepalive.to_bytes(2, "big")
    body += mqtt_str(client_id)
    return b"\x10" + varint(len(body)) + body


def subscribe_packet(packet_id, filters, qos=1):
    body = packet_id.to_bytes(2, "big") + b"".join(mqtt_str(f) + bytes([qos]) for f in filters)
    return b"\x82" + varint(len(body)) + body


def publish_packet(topic, packet_id, payload, retain):
    body = mqtt_str(topic) + packet_id.to_bytes(2, "big") + payload
    return bytes([0x32 | (1 if retain else 0)]) + varint(len(body)) + body


DISCONNECT = b"\xe0\x00"


async def one_session(args, i, sem, stats):
    filters = [f"{args.prefix}/s/{i}"]
    if i % 2 == 1:
        filters.append(f"{args.prefix}/g/{i % args.groups}")
    async with sem:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", args.port), args.timeout)
        try:
            writer.write(connect_packet(f"{args.prefix}-{i}", clean=False))
            writer.write(subscribe_packet(1, filters))
            await writer.drain()
            connack = await asyncio.wait_for(reader.readexactly(4), args.timeout)
            if connack[0] != 0x20 or connack[3] != 0:
                raise RuntimeError(f"client {i}: CONNACK {connack.hex()}")
            head = await asyncio.wait_for(reader.readexactly(2), args.timeout)
            rest = await asyncio.wait_for(reader.readexactly(head[1]), args.timeout)
            if head[0] != 0x90 or any(code > 2 for code in rest[2:]):
                raise RuntimeError(f"client {i}: SUBACK {(head + rest).hex()}")
            writer.write(DISCONNECT)
            await writer.drain()
            # The broker closes after DISCONNECT: wait for it, so the
            # TIME_WAIT is the broker's.
            await asyncio.wait_for(reader.read(), args.timeout)
        finally:
            writer.close()
        stats["sessions"] += 1
        stats["subscriptions"] += len(filters)


async def sessions_main(args):
    sem = asyncio.Semaphore(args.concurrency)
    stats = {"sessions": 0, "subscriptions": 0}
    began = time.monotonic()
    batch = 5000  # bounded task count in flight
    for start in range(0, args.count, batch):
        await asyncio.gather(*(one_session(args, i, sem, stats)
                               for i in range(start, min(start + batch, args.count))))
    stats["seconds"] = round(time.monotonic() - began, 2)
    return stats


def publish_main(args):
    if args.topics:
        topics = args.topics.split(",")
    else:
        fmt, count = args.topic_range.rsplit(":", 1)
        topics = [fmt.format(i) for i in range(int(count))]
    payload = (b"d" * args.payload)[: args.payload]
    sock = socket.create_connection(("127.0.0.1", args.port), args.timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(args.timeout)
    sock.sendall(connect_packet(f"{args.prefix}-pub", clean=True))
    connack = sock.recv(4)
    if len(connack) < 4 or connack[0] != 0x20 or connack[3] != 0:
        raise RuntimeError(f"publisher: CONNACK {connack.hex()}")
    total = len(topics) * args.repeat
    began = time.monotonic()
    sent = acked = 0
    pending = b""
    chunk = max(1, args.window // 4)

    def read_acks():
        nonlocal acked, pending
        data = sock.recv(1 << 20)
        if not data:
            raise RuntimeError("publisher: the broker closed the connection")
        pending += data
        # Only PUBACKs (40 02 id id) come back to a publisher with no
        # subscriptions.
        whole = len(pending) // 4
        if pending[: 4 * whole : 4].count(0x40) != whole:
            raise RuntimeError(f"publisher: unexpected packet {pending[:8].hex()}")
        acked += whole
        pending = pending[4 * whole:]

    def messages():
        for _ in range(args.repeat):
            yield from topics

    it = messages()
    while sent < total:
        out = []
        n = min(chunk, total - sent, args.window - (sent - acked))
        for _ in range(n):
            out.append(publish_packet(next(it), sent % 65535 + 1, payload, args.retain))
            sent += 1
        if out:
            sock.sendall(b"".join(out))
        while sent - acked >= args.window - chunk + 1 or (sent == total and acked < total):
            read_acks()
    sock.sendall(DISCONNECT)
    sock.close()
    return {"published": sent, "acknowledged": acked,
            "seconds": round(time.monotonic() - began, 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sessions")
    s.add_argument("--count", type=int, default=100000)
    s.add_argument("--groups", type=int, default=1000)
    s.add_argument("--concurrency", type=int, default=200)
    p = sub.add_parser("publish")
    p.add_argument("--topics")
    p.add_argument("--topic-range", help="FORMAT:N, e.g. dur-s/s/{}:100000")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--payload", type=int, default=64)
    p.add_argument("--retain", action="store_true")
    p.add_argument("--window", type=int, default=1000)
    for q in (s, p):
        q.add_argument("--port", type=int, required=True)
        q.add_argument("--prefix", default="dur-s")
        q.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    if args.command == "sessions":
        result = asyncio.run(sessions_main(args))
    else:
        if not args.topics and not args.topic_range:
            parser.error("publish needs --topics or --topic-range")
        result = publish_main(args)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        main()
    except (OSError, RuntimeError, asyncio.TimeoutError) as e:
        print(f"durability_load: {e}", file=sys.stderr)
        sys.exit(1)
