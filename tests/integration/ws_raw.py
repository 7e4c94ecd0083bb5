"""A tiny WebSocket client for tests that must send what browsers would not
(text, unmasked or oddly split frames) or see the broker's control frames.

WsClient is mqtt_raw.Client over RFC 6455: the opening handshake, MQTT bytes
sent as masked binary frames, and binary frames from the broker decoded back
into the packet buffer, so read()/expect() work unchanged. Independent of the
broker's own WebSocket code (and of wslay) on purpose.
"""
import base64
import os
import socket
import struct
import time

import mqtt_raw

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    """One client frame (masked unless told otherwise)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def request(path="/mqtt", protocol="mqtt", version="13", key=None, host="127.0.0.1"):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             f"Sec-WebSocket-Version: {version}"]
    if protocol:
        lines.append(f"Sec-WebSocket-Protocol: {protocol}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class WsRefused(Exception):
    def __init__(self, status, response):
        super().__init__(status)
        self.status, self.response = status, response


class WsClient(mqtt_raw.Client):
    """mqtt_raw.Client over a WebSocket; `control` collects the broker's
    control frames as (opcode, payload)."""

    def __init__(self, port, path="/mqtt", host="127.0.0.1", timeout=5.0, ssl_context=None,
                 upgrade=None):
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buffer = b""
        self.timeout = timeout
        self.raw = b""
        self.control = []
        self.sock.sendall(upgrade or request(path))
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WsRefused(None, response)
            response += chunk
        head, _, self.raw = response.partition(b"\r\n\r\n")
        self.response = head.decode()
        status = self.response.split("\r\n")[0]
        if " 101 " not in status:
            raise WsRefused(status, response)

    def send(self, data):
        """MQTT bytes as one masked binary frame."""
        self.sock.sendall(frame(BINARY, data))

    def send_raw(self, data):
        self.sock.sendall(data)

    def _take_frames(self):
        while len(self.raw) >= 2:
            b0, b1 = self.raw[0], self.raw[1]
            assert not b1 & 0x80, "the broker must not mask its frames"
            n, pos = b1 & 0x7F, 2
            if n == 126:
                if len(self.raw) < 4:
                    return
                (n,) = struct.unpack_from("!H", self.raw, 2)
                pos = 4
            elif n == 127:
                if len(self.raw) < 10:
                    return
                (n,) = struct.unpack_from("!Q", self.raw, 2)
                pos = 10
            if len(self.raw) < pos + n:
                return
            payload = self.raw[pos:pos + n]
            self.raw = self.raw[pos + n:]
            opcode = b0 & 0x0F
            if opcode in (BINARY, CONTINUATION):
                self.buffer += payload
            else:
                assert opcode in (CLOSE, PING, PONG), f"unexpected opcode {opcode}"
                self.control.append((opcode, payload))

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no packet from the broker in time")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("broker closed the connection")
        self.raw += chunk
        self._take_frames()

    def wait_control(self, opcode, timeout=5.0):
        """The payload of the next control frame with `opcode`."""
        deadline = time.monotonic() + timeout
        while True:
            for i, (op, payload) in enumerate(self.control):
                if op == opcode:
                    del self.control[i]
                    return payload
            self._fill(deadline)
