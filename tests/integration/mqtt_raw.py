"""A tiny MQTT client that builds and reads raw packets, for tests that must
see exactly what the broker sends (reason codes, flags, packet ids) or send
what no well-behaved client library would.

Independent of shardmq's own codec on purpose: the tests check the broker
against this second, simple implementation of the wire format.
"""
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)


def varint(n):
    out = bytearray()
    while True:
        byte = n % 128
        n //= 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(s):
    data = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(data)) + data


def packet(ptype, flags, body):
    return bytes([(ptype << 4) | flags]) + varint(len(body)) + body


def props(data=b""):
    return varint(len(data)) + data


def connect(client_id, version=4, clean=True, keepalive=60, will=None, username=None,
            password=None, properties=b"", will_properties=b""):
    """will = (topic, payload, qos, retain); properties and will_properties
    are MQTT 5 property bytes (without their length)."""
    name = b"MQIsdp" if version == 3 else b"MQTT"
    flags = 0x02 if clean else 0
    payload = utf8(client_id)
    if will:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        if version == 5:
            payload += props(will_properties)
        payload += utf8(topic) + utf8(message)
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += utf8(password)
    body = utf8(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += props(properties)
    return packet(CONNECT, 0, body + payload)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None, version=4):
    if isinstance(payload, str):
        payload = payload.encode()
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    if version == 5:
        body += props()
    flags = (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    return packet(PUBLISH, flags, body + payload)


def subscribe(packet_id, *filters, version=4):
    """filters: (filter, qos) pairs or (filter, options byte)."""
    body = struct.pack("!H", packet_id) + (props() if version == 5 else b"")
    for topic_filter, options in filters:
        body += utf8(topic_filter) + bytes([options])
    return packet(SUBSCRIBE, 2, body)


def unsubscribe(packet_id, *filters, version=4):
    body = struct.pack("!H", packet_id) + (props() if version == 5 else b"")
    for topic_filter in filters:
        body += utf8(topic_filter)
    return packet(UNSUBSCRIBE, 2, body)


def ack(ptype, packet_id):
    return packet(ptype, 2 if ptype == PUBREL else 0, struct.pack("!H", packet_id))


def pingreq():
    return packet(PINGREQ, 0, b"")


def disconnect(version=4, reason=0):
    if version == 5:
        return packet(DISCONNECT, 0, bytes([reason]) + props())
    return packet(DISCONNECT, 0, b"")


class Packet:
    def __init__(self, ptype, flags, body):
        self.type, self.flags, self.body = ptype, flags, body

    def __repr__(self):
        return f"Packet(type={self.type}, flags={self.flags:#x}, body={self.body!r})"

    def publish_header(self):
        """(topic, qos, packet id or None, offset after them) of a PUBLISH."""
        qos = (self.flags >> 1) & 3
        (length,) = struct.unpack_from("!H", self.body, 0)
        topic = self.body[2:2 + length].decode()
        pos = 2 + length
        packet_id = None
        if qos:
            (packet_id,) = struct.unpack_from("!H", self.body, pos)
            pos += 2
        return topic, qos, packet_id, pos

    # PUBLISH fields (3.x layout; v5 properties are skipped).
    def publish_fields(self, version=4):
        topic, qos, packet_id, pos = self.publish_header()
        if version == 5:
            plen, used = read_varint(self.body, pos)
            pos += used + plen
        return {"topic": topic, "payload": self.body[pos:], "qos": qos,
                "retain": bool(self.flags & 1), "dup": bool(self.flags & 8),
                "packet_id": packet_id}

    def packet_id(self):
        return struct.unpack_from("!H", self.body, 0)[0]


def read_varint(data, pos):
    value, shift, used = 0, 0, 0
    while True:
        byte = data[pos + used]
        used += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, used


class Client:
    """A blocking socket with packet framing and a deadline on every read."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.timeout = timeout

    @classmethod
    def unix(cls, path, timeout=5.0):
        """A client connected to the unix-domain socket at `path`."""
        client = cls.__new__(cls)
        client.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.sock.settimeout(timeout)
        client.sock.connect(str(path))
        client.buffer = b""
        client.timeout = timeout
        return client

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no packet from the broker in time")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        self.buffer += chunk

    def read(self, timeout=None):
        """Returns the next Packet; raises ConnectionError on close."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self.buffer) >= 2:
                try:
                    length, used = read_varint(self.buffer, 1)
                except IndexError:
                    length = None
                if length is not None and len(self.buffer) >= 1 + used + length:
                    first = self.buffer[0]
                    body = self.buffer[1 + used:1 + used + length]
                    self.buffer = self.buffer[1 + used + length:]
                    return Packet(first >> 4, first & 0x0F, body)
            self._fill(deadline)

    def expect(self, ptype, timeout=None):
        pkt = self.read(timeout)
        assert pkt.type == ptype, f"expected packet type {ptype}, got {pkt}"
        return pkt

    def closed_by_broker(self, timeout=5.0):
        """True if the broker closes the socket (after any packets) within timeout."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except ConnectionError:
            return True
        except (TimeoutError, socket.timeout):
            return False
        except OSError:
            return True

    def no_packet(self, timeout=0.5):
        """True if nothing arrives within timeout."""
        try:
            self.read(timeout)
            return False
        except (TimeoutError, socket.timeout):
            return True

    def connect(self, client_id, version=4, **kwargs):
        """CONNECT, and return the CONNACK body."""
        self.send(connect(client_id, version=version, **kwargs))
        return self.expect(CONNACK).body

    def close(self):
        self.sock.close()


class AsyncClient:
    """An asyncio MQTT client (3.x, or 5.0 with version=5 and no properties) over raw sockets, for tests that move many
    messages: it answers the QoS 1/2 handshakes itself (acks batched per
    read), keeps its inbound QoS 2 state across reconnects (so a PUBLISH
    resent before PUBREL is recognised, as a real client must), and hands
    each new application message to `on_message(topic, payload, qos, dup)`.
    Outbound publishes use a bounded window of packet ids."""

    def __init__(self, port, client_id, version=4, on_message=None, window=64):
        self.port, self.client_id, self.version = port, client_id, version
        self.on_message = on_message
        self.window = window
        self.reader = self.writer = None
        self.inbound_qos2 = set()  # packet ids delivered, PUBREL not yet seen
        self.outstanding = {}      # packet id -> qos of our unacked publishes
        self.next_id = 1
        self.acked = None
        self.waiters = {}          # packet type -> asyncio.Queue of packets
        self.pump_task = None
        self.closed = None
        self.paused = False        # True: stop reading the socket (a slow client)
        self.duplicates_suppressed = 0  # QoS 2 PUBLISH resent before PUBREL, not delivered

    async def connect(self, clean=True, keepalive=0):
        import asyncio
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.acked = asyncio.Condition()
        self.closed = asyncio.Event()
        self.buffer = bytearray()
        self.writer.write(connect(self.client_id, version=self.version, clean=clean,
                                  keepalive=keepalive))
        pkt = await self._read_packet()
        assert pkt.type == CONNACK and pkt.body[1] == 0, pkt
        self.pump_task = asyncio.ensure_future(self._pump())
        return pkt.body

    async def _read_packet(self):
        while True:
            frame = self._take_frame()
            if frame is not None:
                return frame
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk

    def _take_frame(self):
        buf = self.buffer
        if len(buf) < 2:
            return None
        length, shift, pos = 0, 0, 1
        while True:
            if pos >= len(buf):
                return None
            byte = buf[pos]
            length |= (byte & 0x7F) << shift
            shift += 7
            pos += 1
            if not byte & 0x80:
                break
        if len(buf) < pos + length:
            return None
        first = buf[0]
        body = bytes(buf[pos:pos + length])
        del buf[:pos + length]
        return Packet(first >> 4, first & 0x0F, body)

    async def _pump(self):
        import asyncio
        try:
            chunk = b""  # CONNECT may have read packets that followed CONNACK
            while True:
                self.buffer += chunk
                out = bytearray()
                released = False
                while True:
                    pkt = self._take_frame()
                    if pkt is None:
                        break
                    released |= self._handle(pkt, out)
                if out:
                    self.writer.write(bytes(out))
                if released:
                    async with self.acked:
                        self.acked.notify_all()
                while self.paused:
                    await asyncio.sleep(0.05)
                chunk = await self.reader.read(262144)
                if not chunk:
                    break
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self.closed.set()

    def _handle(self, pkt, out):
        """Returns True if an outbound flow completed."""
        t = pkt.type
        if t == PUBLISH:
            fields = pkt.publish_fields(self.version)
            topic, payload = fields["topic"], fields["payload"]
            qos, pid = fields["qos"], fields["packet_id"]
            if qos == 2:
                if pid not in self.inbound_qos2:
                    self.inbound_qos2.add(pid)
                    if self.on_message:
                        self.on_message(topic, payload, qos, bool(pkt.flags & 8))
                else:
                    self.duplicates_suppressed += 1
                out += ack(PUBREC, pid)
            else:
                if self.on_message:
                    self.on_message(topic, payload, qos, bool(pkt.flags & 8))
                if qos == 1:
                    out += ack(PUBACK, pid)
            return False
        if t == PUBREL:
            pid = pkt.packet_id()
            self.inbound_qos2.discard(pid)
            out += ack(PUBCOMP, pid)
            return False
        if t in (PUBACK, PUBCOMP):
            self.outstanding.pop(pkt.packet_id(), None)
            return True
        if t == PUBREC:
            out += ack(PUBREL, pkt.packet_id())
            return False
        queue = self.waiters.get(t)
        if queue is not None:
            queue.put_nowait(pkt)
        return False

    async def request(self, data, reply_type, timeout=10):
        import asyncio
        queue = self.waiters.setdefault(reply_type, asyncio.Queue())
        self.writer.write(data)
        return await asyncio.wait_for(queue.get(), timeout)

    async def subscribe(self, *filters, packet_id=1):
        pkt = await self.request(subscribe(packet_id, *filters, version=self.version), SUBACK)
        if self.version == 5:  # skip the SUBACK's properties
            plen, used = read_varint(pkt.body, 2)
            return list(pkt.body[2 + used + plen:])
        return list(pkt.body[2:])

    async def publish(self, topic, payload, qos=0):
        """Sends one PUBLISH; QoS 1/2 wait only for a free slot in the window."""
        if qos == 0:
            self.writer.write(publish(topic, payload, qos=0, version=self.version))
            return
        if len(self.outstanding) >= self.window:
            async with self.acked:
                await self.acked.wait_for(lambda: len(self.outstanding) < self.window)
        while self.next_id in self.outstanding:
            self.next_id = self.next_id % 65535 + 1
        pid = self.next_id
        self.next_id = self.next_id % 65535 + 1
        self.outstanding[pid] = qos
        self.writer.write(publish(topic, payload, qos=qos, packet_id=pid, version=self.version))
        if self.writer.transport.get_write_buffer_size() > 1 << 20:
            await self.writer.drain()

    async def flush(self, timeout=60):
        """Waits until every QoS 1/2 publish is acknowledged."""
        import asyncio
        async with self.acked:
            await asyncio.wait_for(self.acked.wait_for(lambda: not self.outstanding), timeout)

    async def disconnect(self):
        self.writer.write(disconnect(version=self.version))
        await self.writer.drain()
        await self.abort()

    async def abort(self):
        import asyncio
        self.writer.close()
        if self.pump_task:
            self.pump_task.cancel()
            try:
                await self.pump_task
            except asyncio.CancelledError:
                pass


def home_shard(client_id, shards):
    """The broker's home shard for a client id (src/broker/client_id.cc)."""
    h = 0xcbf29ce484222325
    for c in client_id.encode():
        h ^= c
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    h ^= h >> 29
    return h % shards


def spread_ids(prefix, count, shards):
    """`count` client ids starting with prefix, on distinct home shards when
    there are enough shards (so a test crosses shards on purpose)."""
    ids, used, n = [], set(), 0
    while len(ids) < count:
        cid = f"{prefix}{n}"
        n += 1
        shard = home_shard(cid, shards)
        if shard in used and len(used) < min(count, shards):
            continue
        used.add(shard)
        ids.append(cid)
    return ids


def connected(port, client_id, version=4, **kwargs):
    """A Client that has completed CONNECT/CONNACK 0; returns (client, connack body)."""
    client = Client(port)
    body = client.connect(client_id, version=version, **kwargs)
    assert body[1] == 0, f"CONNACK {body!r}"
    return client


def subscribed(port, client_id, *filters, version=4, **kwargs):
    """A connected Client subscribed to filters ((filter, qos) pairs)."""
    client = connected(port, client_id, version=version, **kwargs)
    client.send(subscribe(1, *filters))
    suback = client.expect(SUBACK)
    assert list(suback.body[2:]) == [q for _, q in filters], suback
    return client


def read_publishes(client, count, timeout=5.0, version=4, ack_them=True):
    """Reads `count` PUBLISH packets (acknowledging QoS 1/2 unless told not to);
    returns their fields. Other packets in between (PUBREL) are answered."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        pkt = client.read(max(0.01, deadline - time.monotonic()))
        if pkt.type == PUBREL:
            client.send(ack(PUBCOMP, pkt.packet_id()))
            continue
        assert pkt.type == PUBLISH, pkt
        fields = pkt.publish_fields(version)
        out.append(fields)
        if ack_them and fields["qos"] == 1:
            client.send(ack(PUBACK, fields["packet_id"]))
        elif ack_them and fields["qos"] == 2:
            client.send(ack(PUBREC, fields["packet_id"]))
    return out


def publish_and_confirm(client, topic, payload, qos=0, packet_id=1, retain=False):
    """Publishes and completes the QoS handshake from the publisher's side."""
    client.send(publish(topic, payload, qos=qos, packet_id=packet_id, retain=retain))
    if qos == 1:
        assert client.expect(PUBACK).packet_id() == packet_id
    elif qos == 2:
        assert client.expect(PUBREC).packet_id() == packet_id
        client.send(ack(PUBREL, packet_id))
        assert client.expect(PUBCOMP).packet_id() == packet_id
    else:
        # A round trip, so the publish has been processed when this returns.
        client.send(pingreq())
        client.expect(PINGRESP)
