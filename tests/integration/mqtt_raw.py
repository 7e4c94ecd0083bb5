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
            password=None, properties=b""):
    """will = (topic, payload, qos, retain)."""
    name = b"MQIsdp" if version == 3 else b"MQTT"
    flags = 0x02 if clean else 0
    payload = utf8(client_id)
    if will:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        if version == 5:
            payload += props()
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

    # PUBLISH fields (3.x layout; v5 properties are skipped).
    def publish_fields(self, version=4):
        qos = (self.flags >> 1) & 3
        (length,) = struct.unpack_from("!H", self.body, 0)
        topic = self.body[2:2 + length].decode()
        pos = 2 + length
        packet_id = None
        if qos:
            (packet_id,) = struct.unpack_from("!H", self.body, pos)
            pos += 2
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
