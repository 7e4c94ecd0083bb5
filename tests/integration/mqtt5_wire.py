"""MQTT 5.0 additions to the raw test client in mqtt_raw.py: properties
(encode and decode), v5 CONNECT/PUBLISH/SUBSCRIBE with properties, and
readers for CONNACK, PUBLISH, SUBACK and DISCONNECT that return reason codes
and properties. Independent of shardmq's codec on purpose.

Also the one place that names the daemon flags the MQTT 5 tests use, so the
lead can rename them in one edit.
"""
import struct
import time

import mqtt_raw
from mqtt_raw import (CONNACK, DISCONNECT, PINGRESP, PUBACK, PUBCOMP, PUBLISH, PUBREC,
                      PUBREL, SUBACK, UNSUBACK, packet, read_varint, utf8, varint)

# --- daemon flags (the lead decides the names; change them here only) -------------------
FLAGS = {
    "topic_alias_maximum": "--topic-alias-maximum={}",
    "max_qos": "--max-qos={}",
    "retain_available": "--retain-available={}",
    "max_packet_size": "--max-packet-size={}",
    "receive_maximum": "--receive-maximum={}",
    "max_keepalive": "--max-keepalive={}",
    "deny_subscribe": "--deny-subscribe={}",
    "max_session_expiry": "--max-session-expiry={}",
    "response_information": "--response-information={}",
}


def flag(name, value):
    """The command-line argument for one broker setting, e.g. flag("max_qos", 1)."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    return FLAGS[name].format(value)


# --- properties -------------------------------------------------------------------------
PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTH_METHOD = 0x15
AUTH_DATA = 0x16
REQUEST_PROBLEM_INFO = 0x17
WILL_DELAY = 0x18
REQUEST_RESPONSE_INFO = 0x19
RESPONSE_INFO = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_AVAILABLE = 0x28
SUBSCRIPTION_ID_AVAILABLE = 0x29
SHARED_AVAILABLE = 0x2A

_BYTE = {PAYLOAD_FORMAT, REQUEST_PROBLEM_INFO, REQUEST_RESPONSE_INFO, MAXIMUM_QOS,
         RETAIN_AVAILABLE, WILDCARD_AVAILABLE, SUBSCRIPTION_ID_AVAILABLE, SHARED_AVAILABLE}
_TWO = {SERVER_KEEP_ALIVE, RECEIVE_MAXIMUM, TOPIC_ALIAS_MAXIMUM, TOPIC_ALIAS}
_FOUR = {MESSAGE_EXPIRY, SESSION_EXPIRY, WILL_DELAY, MAXIMUM_PACKET_SIZE}
_STRING = {CONTENT_TYPE, RESPONSE_TOPIC, ASSIGNED_CLIENT_ID, AUTH_METHOD, RESPONSE_INFO,
           SERVER_REFERENCE, REASON_STRING}
_BINARY = {CORRELATION_DATA, AUTH_DATA}


def prop(pid, value):
    """One encoded property. User property: value = (name, value)."""
    out = bytes([pid])
    if pid in _BYTE:
        return out + bytes([value])
    if pid in _TWO:
        return out + struct.pack("!H", value)
    if pid in _FOUR:
        return out + struct.pack("!I", value)
    if pid in _STRING or pid in _BINARY:
        return out + utf8(value)
    if pid == SUBSCRIPTION_ID:
        return out + varint(value)
    if pid == USER_PROPERTY:
        return out + utf8(value[0]) + utf8(value[1])
    raise ValueError(f"unknown property {pid:#x}")


def props(*pairs):
    """Encoded property list (without its length): props((id, value), ...)."""
    return b"".join(prop(pid, value) for pid, value in pairs)


class Props(list):
    """Decoded properties in wire order: a list of (id, value). Strings come
    back as str, binary data as bytes."""

    def get(self, pid, default=None):
        for key, value in self:
            if key == pid:
                return value
        return default

    def all(self, pid):
        return [value for key, value in self if key == pid]

    def __contains__(self, pid):
        return any(key == pid for key, _ in self)


def parse_props(data, pos):
    """Reads a property length and the properties at data[pos:]; returns (Props, next pos)."""
    length, used = read_varint(data, pos)
    pos += used
    end = pos + length
    out = Props()
    while pos < end:
        pid = data[pos]
        pos += 1
        if pid in _BYTE:
            value = data[pos]
            pos += 1
        elif pid in _TWO:
            (value,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif pid in _FOUR:
            (value,) = struct.unpack_from("!I", data, pos)
            pos += 4
        elif pid in _STRING or pid in _BINARY:
            (n,) = struct.unpack_from("!H", data, pos)
            raw = bytes(data[pos + 2:pos + 2 + n])
            value = raw.decode() if pid in _STRING else raw
            pos += 2 + n
        elif pid == SUBSCRIPTION_ID:
            value, used = read_varint(data, pos)
            pos += used
        elif pid == USER_PROPERTY:
            (n,) = struct.unpack_from("!H", data, pos)
            name = bytes(data[pos + 2:pos + 2 + n]).decode()
            pos += 2 + n
            (m,) = struct.unpack_from("!H", data, pos)
            value = (name, bytes(data[pos + 2:pos + 2 + m]).decode())
            pos += 2 + m
        else:
            raise AssertionError(f"unknown property id {pid:#x} in {bytes(data)!r}")
        out.append((pid, value))
    assert pos == end, f"property length mismatch in {bytes(data)!r}"
    return out, end


# --- packets ----------------------------------------------------------------------------
def connect5(client_id, clean=True, keepalive=60, properties=b"", will=None, will_properties=b"",
             username=None, password=None):
    """A v5 CONNECT. will = (topic, payload, qos, retain)."""
    flags = 0x02 if clean else 0
    payload = utf8(client_id)
    if will:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += varint(len(will_properties)) + will_properties + utf8(topic) + utf8(message)
    if username is not None:
        flags |= 0x80
        payload += utf8(username)
    if password is not None:
        flags |= 0x40
        payload += utf8(password)
    body = utf8("MQTT") + bytes([5, flags]) + struct.pack("!H", keepalive)
    body += varint(len(properties)) + properties
    return packet(mqtt_raw.CONNECT, 0, body + payload)


def publish5(topic, payload=b"", qos=0, retain=False, dup=False, packet_id=None, properties=b""):
    if isinstance(payload, str):
        payload = payload.encode()
    body = utf8(topic)
    if qos:
        body += struct.pack("!H", packet_id)
    body += varint(len(properties)) + properties
    flags = (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    return packet(PUBLISH, flags, body + payload)


def options(qos, no_local=False, retain_as_published=False, retain_handling=0):
    """The subscription options byte."""
    return qos | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) | \
        (retain_handling << 4)


def subscribe5(packet_id, *filters, properties=b""):
    """filters: (filter, options byte) pairs."""
    body = struct.pack("!H", packet_id) + varint(len(properties)) + properties
    for topic_filter, opts in filters:
        body += utf8(topic_filter) + bytes([opts])
    return packet(mqtt_raw.SUBSCRIBE, 2, body)


def unsubscribe5(packet_id, *filters):
    body = struct.pack("!H", packet_id) + varint(0)
    for topic_filter in filters:
        body += utf8(topic_filter)
    return packet(mqtt_raw.UNSUBSCRIBE, 2, body)


def ack5(ptype, packet_id, reason=0, properties=b""):
    body = struct.pack("!H", packet_id) + bytes([reason]) + varint(len(properties)) + properties
    return packet(ptype, 2 if ptype == PUBREL else 0, body)


def disconnect5(reason=0, properties=b""):
    return packet(DISCONNECT, 0, bytes([reason]) + varint(len(properties)) + properties)


# --- readers ----------------------------------------------------------------------------
def parse_connack(pkt):
    """{'session_present', 'reason', 'props'} of a v5 CONNACK."""
    assert pkt.type == CONNACK, pkt
    body = pkt.body
    properties = Props()
    if len(body) > 2:
        properties, _ = parse_props(body, 2)
    return {"session_present": bool(body[0] & 1), "reason": body[1], "props": properties}


def parse_publish(pkt):
    """Fields of a v5 PUBLISH, with its properties."""
    assert pkt.type == PUBLISH, pkt
    topic, qos, packet_id, pos = pkt.publish_header()
    properties, pos = parse_props(pkt.body, pos)
    return {"topic": topic, "payload": bytes(pkt.body[pos:]), "qos": qos,
            "retain": bool(pkt.flags & 1), "dup": bool(pkt.flags & 8), "packet_id": packet_id,
            "props": properties, "size": packet_size(pkt)}


def parse_ack(pkt):
    """(packet id, reason code, props) of PUBACK/PUBREC/PUBREL/PUBCOMP."""
    (pid,) = struct.unpack_from("!H", pkt.body, 0)
    reason = pkt.body[2] if len(pkt.body) > 2 else 0
    properties = parse_props(pkt.body, 3)[0] if len(pkt.body) > 3 else Props()
    return pid, reason, properties


def parse_suback(pkt):
    """(packet id, [reason codes], props) of a v5 SUBACK or UNSUBACK."""
    assert pkt.type in (SUBACK, UNSUBACK), pkt
    (pid,) = struct.unpack_from("!H", pkt.body, 0)
    properties, pos = parse_props(pkt.body, 2)
    return pid, list(pkt.body[pos:]), properties


def parse_disconnect(pkt):
    """(reason code, props) of a v5 DISCONNECT."""
    assert pkt.type == DISCONNECT, pkt
    reason = pkt.body[0] if pkt.body else 0
    properties = parse_props(pkt.body, 1)[0] if len(pkt.body) > 1 else Props()
    return reason, properties


def packet_size(pkt):
    """Total bytes of a packet on the wire (fixed header included)."""
    return 1 + len(varint(len(pkt.body))) + len(pkt.body)


# --- a v5 raw client ----------------------------------------------------------------------
class Client5(mqtt_raw.Client):
    """mqtt_raw.Client speaking v5: connect5() returns the parsed CONNACK."""

    def connect5(self, client_id, **kwargs):
        self.send(connect5(client_id, **kwargs))
        return parse_connack(self.expect(CONNACK))

    def _expect_ack(self, ptype, timeout=5.0):
        """Reads until a packet of `ptype`. A PUBLISH met on the way (e.g. the
        client's own message, delivered before its PUBACK) is kept for the
        next read_publish; a PUBREL is completed."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self.read(max(0.01, deadline - time.monotonic()))
            if pkt.type == PUBLISH:
                self.__dict__.setdefault("stashed", []).append(pkt)
                continue
            if pkt.type == PUBREL and ptype != PUBREL:
                self.send(ack5(PUBCOMP, parse_ack(pkt)[0]))
                continue
            assert pkt.type == ptype, f"expected packet type {ptype}, got {pkt}"
            return pkt

    def subscribe(self, packet_id, *filters, properties=b""):
        """Sends SUBSCRIBE, returns the SUBACK reason codes."""
        self.send(subscribe5(packet_id, *filters, properties=properties))
        # A PUBREL for an earlier QoS 2 delivery may come first: complete it.
        while True:
            pkt = self.read(5.0)
            if pkt.type != PUBREL:
                break
            self.send(ack5(PUBCOMP, parse_ack(pkt)[0]))
        assert pkt.type == SUBACK, f"expected SUBACK, got {pkt}"
        pid, codes, _ = parse_suback(pkt)
        assert pid == packet_id
        return codes

    def publish(self, topic, payload=b"", qos=0, packet_id=None, retain=False, properties=b""):
        """Publishes and completes the publisher's side of the QoS flow; returns the
        reason code of PUBACK/PUBREC (0 for QoS 0, after a PINGREQ round trip)."""
        self.send(publish5(topic, payload, qos=qos, retain=retain, packet_id=packet_id,
                           properties=properties))
        if qos == 0:
            self.send(mqtt_raw.pingreq())
            self._expect_ack(PINGRESP)
            return 0
        if qos == 1:
            pid, reason, _ = parse_ack(self._expect_ack(PUBACK))
            assert pid == packet_id
            return reason
        pid, reason, _ = parse_ack(self._expect_ack(PUBREC))
        assert pid == packet_id
        if reason < 0x80:
            self.send(ack5(PUBREL, packet_id))
            assert parse_ack(self._expect_ack(PUBCOMP))[0] == packet_id
        return reason

    def read_publish(self, timeout=5.0, ack=True):
        """Next PUBLISH (answering PUBREL on the way); acknowledges it unless told not to."""
        deadline = time.monotonic() + timeout
        stashed = self.__dict__.get("stashed")
        while True:
            if stashed:
                pkt = stashed.pop(0)
            else:
                pkt = self.read(max(0.01, deadline - time.monotonic()))
            if pkt.type == PUBREL:
                self.send(ack5(PUBCOMP, parse_ack(pkt)[0]))
                continue
            assert pkt.type == PUBLISH, f"expected PUBLISH, got {pkt}"
            fields = parse_publish(pkt)
            if ack and fields["qos"] == 1:
                self.send(ack5(PUBACK, fields["packet_id"]))
            elif ack and fields["qos"] == 2:
                self.send(ack5(PUBREC, fields["packet_id"]))
            return fields

    def read_publishes(self, count, timeout=5.0, ack=True):
        deadline = time.monotonic() + timeout
        return [self.read_publish(max(0.01, deadline - time.monotonic()), ack=ack)
                for _ in range(count)]

    def no_publish(self, timeout=0.7):
        """True if no PUBLISH arrives within timeout (PUBREL is answered, PINGRESP ignored)."""
        if self.__dict__.get("stashed"):
            return False
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            try:
                pkt = self.read(remaining)
            except (TimeoutError, OSError):
                return True
            if pkt.type == PUBLISH:
                return False
            if pkt.type == PUBREL:
                self.send(ack5(PUBCOMP, parse_ack(pkt)[0]))

    def expect_disconnect(self, timeout=5.0):
        """Reads until a DISCONNECT from the broker (skipping acks and publishes);
        returns its reason code, or None if the socket closed without one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                pkt = self.read(max(0.01, deadline - time.monotonic()))
            except ConnectionError:
                return None
            except OSError:
                return None
            if pkt.type == DISCONNECT:
                return parse_disconnect(pkt)[0]

    def ping(self):
        self.send(mqtt_raw.pingreq())
        self.expect(PINGRESP)


def connected5(port, client_id, **kwargs):
    """A Client5 after CONNACK 0; returns (client, parsed CONNACK)."""
    client = Client5(port)
    connack = client.connect5(client_id, **kwargs)
    assert connack["reason"] == 0, connack
    return client, connack
