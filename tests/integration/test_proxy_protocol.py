"""PROXY protocol listeners (?proxy_protocol=true) on the real daemon: v1 and v2
headers (IPv4, IPv6, LOCAL) in front of MQTT, WebSocket and TLS; the admin API
shows the client by the header's address, also after a hand-off to another
shard; the per-address limit counts that address; a missing, malformed or late
header is refused without disturbing other clients; a plain listener beside
it needs no header."""
import ipaddress
import socket
import ssl
import struct
import time

import pytest

import mqtt_raw as raw
import ws_raw
from conftest import wait_until
from test_admin_http import get_json, metric_sum, metrics
from test_tls import certs, tls_args  # noqa: F401 (certs is a fixture)

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src="203.0.113.7", sport=5555, dst="10.0.0.1", dport=1883):
    family = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src="203.0.113.7", sport=5555, dst=None, dport=1883, command=1, tlvs=b""):
    """A v2 header; command 0 is LOCAL (no addresses)."""
    if command == 0:
        return V2_SIGNATURE + bytes([0x20, 0x00]) + struct.pack("!H", 0)
    source = ipaddress.ip_address(src)
    dest = ipaddress.ip_address(dst or ("10.0.0.1" if source.version == 4 else "2001:db8::1"))
    family = 0x11 if source.version == 4 else 0x21
    block = source.packed + dest.packed + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(block)) + block


def client_on(port, header):
    """A raw client that sent `header` first (no CONNECT yet)."""
    client = raw.Client(port)
    if header:
        client.send(header)
    return client


def connected_via(port, header, client_id, **kwargs):
    """Header and CONNECT in one send, as a balancer forwarding a burst would."""
    client = raw.Client(port)
    client.send(header + raw.connect(client_id, **kwargs))
    body = client.expect(raw.CONNACK).body
    assert body[1] == 0, body
    return client


def addresses(broker):
    return {c["client_id"]: c["address"]
            for c in get_json(broker, "/api/v1/clients")["clients"] if c["connected"]}


def refused_proxy(broker):
    return metric_sum(metrics(broker), "shardmq_connections_refused_total",
                      reason="proxy_header")


@pytest.fixture
def proxy_broker(start_broker):
    """Listener 0 wants PROXY headers, listener 1 is plain; admin API on."""
    broker = start_broker("--http-listen=127.0.0.1:0", "--sys-interval=0", shards=2,
                          listen="tcp://127.0.0.1:0?proxy_protocol=true,127.0.0.1:0")
    broker.plain_port = int(broker.addresses[1].rpartition(":")[2])
    return broker


def test_v1_header_then_mqtt_works_and_the_admin_api_shows_its_address(proxy_broker):
    broker = proxy_broker
    assert any("PROXY protocol header" in line and broker.addresses[0] in line
               for line in broker.log_lines), broker.log()
    subscriber = raw.subscribed(broker.plain_port, "plain-sub", ("pp/#", 1))
    client = connected_via(broker.port, v1(), "behind-lb")
    client.send(raw.subscribe(1, ("back/x", 0)))
    client.expect(raw.SUBACK)
    raw.publish_and_confirm(client, "pp/t", b"hello", qos=1)
    assert raw.read_publishes(subscriber, 1)[0]["payload"] == b"hello"
    raw.publish_and_confirm(subscriber, "back/x", b"back")
    assert raw.read_publishes(client, 1)[0]["payload"] == b"back"

    seen = addresses(broker)
    assert seen["behind-lb"] == "203.0.113.7:5555"
    # The plain listener beside it needs no header and keeps the real peer.
    assert seen["plain-sub"].startswith("127.0.0.1:")
    assert refused_proxy(broker) == 0
    client.close()
    subscriber.close()


def test_v2_ipv4_ipv6_and_local(proxy_broker):
    broker = proxy_broker
    four = connected_via(broker.port, v2("198.51.100.9", 6000), "v2-four")
    six = connected_via(broker.port, v2("2001:db8::7", 50000), "v2-six", version=5)
    # TLVs (PP2_TYPE_AUTHORITY) are skipped.
    tlv = connected_via(broker.port, v2("192.0.2.1", 7, tlvs=b"\x02\x00\x04host"), "v2-tlv")
    # LOCAL: the balancer's own connection (a health check) keeps its address.
    local = connected_via(broker.port, v2(command=0), "v2-local")
    own_port = local.sock.getsockname()[1]
    seen = addresses(broker)
    assert seen["v2-four"] == "198.51.100.9:6000"
    assert seen["v2-six"] == "[2001:db8::7]:50000"
    assert seen["v2-tlv"] == "192.0.2.1:7"
    assert seen["v2-local"] == f"127.0.0.1:{own_port}"
    for c in (four, six, tlv, local):
        c.send(raw.pingreq())
        c.expect(raw.PINGRESP)
        c.close()


def test_header_split_into_tiny_pieces(proxy_broker):
    broker = proxy_broker
    for name, header in (("split-v1", v1("203.0.113.50", 4000)),
                         ("split-v2", v2("203.0.113.51", 4001))):
        client = raw.Client(broker.port)
        data = header + raw.connect(name)
        for i in range(0, len(data), 3):
            client.send(data[i:i + 3])
            time.sleep(0.005)  # separate segments (TCP_NODELAY): separate reads
        assert client.expect(raw.CONNACK).body[1] == 0
        client.close()
    # Header alone first, CONNECT later: nothing is lost at the boundary.
    client = client_on(broker.port, v1("203.0.113.52", 4002))
    time.sleep(0.1)
    sub = client.connect("split-later")
    assert sub[1] == 0
    assert addresses(broker)["split-later"] == "203.0.113.52:4002"
    client.close()


def test_hand_off_keeps_the_header_address(proxy_broker):
    broker = proxy_broker
    # Client ids homed on both shards: whichever shard accepts, some are
    # handed off, and must arrive with the header's address, not the socket's.
    ids = raw.spread_ids("moved", 6, 2)
    clients = [connected_via(broker.port, v1(f"203.0.113.{10 + i}", 1000 + i), cid)
               for i, cid in enumerate(ids)]
    seen = addresses(broker)
    for i, cid in enumerate(ids):
        assert seen[cid] == f"203.0.113.{10 + i}:{1000 + i}"
    for c in clients:
        c.close()


@pytest.mark.parametrize("header", [
    V2_SIGNATURE[:11] + b"X" + bytes([0x21, 0x11, 0, 12]) + bytes(12),  # bad signature
    b"PROXY TCP4 1.2.3 10.0.0.1 5555 1883\r\n",
    b"PROXY TCP4 1.2.3.4 10.0.0.1 70000 1883\r\n",
    b"PROXY TCP4 1.2.3.4  10.0.0.1 5555 1883\r\n",
    V2_SIGNATURE + bytes([0x21, 0x12, 0, 12]) + bytes(12),  # UDP
    raw.connect("no-header"),  # a client that skipped the balancer
    b"GET /mqtt HTTP/1.1\r\n\r\n",
], ids=["v2-bad-signature", "v1-bad-address", "v1-bad-port", "v1-two-spaces", "v2-udp",
        "no-header", "http"])
def test_missing_or_malformed_header_is_refused_at_once(proxy_broker, header):
    broker = proxy_broker
    bystander = connected_via(broker.port, v1(), "bystander")
    bad = raw.Client(broker.port)
    bad.send(header + raw.connect("bad"))
    # Well before the 10 s connect timeout, and without a CONNACK.
    started = time.monotonic()
    with pytest.raises((ConnectionError, OSError)):
        bad.read(timeout=5)
    assert time.monotonic() - started < 3
    assert wait_until(lambda: refused_proxy(broker) == 1)
    assert "bad" not in addresses(broker)
    assert wait_until(lambda: any("refused a connection from 127.0.0.1:" in line
                                  and "PROXY" in line for line in broker.log_lines)), broker.log()
    # Others carry on, on both listeners.
    bystander.send(raw.pingreq())
    bystander.expect(raw.PINGRESP)
    raw.connected(broker.plain_port, "plain-after").close()
    connected_via(broker.port, v2(), "proxied-after").close()
    bystander.close()


def test_truncated_header_is_closed_at_the_connect_timeout(start_broker):
    broker = start_broker("--http-listen=127.0.0.1:0", "--connect-timeout-ms=800",
                          listen="tcp://127.0.0.1:0?proxy_protocol=true")
    partial = client_on(broker.port, v1()[:20])
    silent = client_on(broker.port, b"")
    v2_partial = client_on(broker.port, v2()[:14])
    started = time.monotonic()
    for c in (partial, silent, v2_partial):
        assert c.closed_by_broker(timeout=5)
    assert time.monotonic() - started >= 0.5  # waited for the timeout, not refused at once
    assert wait_until(lambda: refused_proxy(broker) == 3)
    connected_via(broker.port, v1(), "after-timeouts").close()


def test_per_address_limit_counts_the_header_address(start_broker):
    # Every connection comes from the balancer (127.0.0.1); the limit must see
    # the clients behind it.
    broker = start_broker("--http-listen=127.0.0.1:0", "--max-connections-per-address=1",
                          listen="tcp://127.0.0.1:0?proxy_protocol=true")
    first = connected_via(broker.port, v1("203.0.113.1", 1), "limit-a")
    other = connected_via(broker.port, v1("203.0.113.2", 1), "limit-b")
    again = raw.Client(broker.port)
    again.send(v1("203.0.113.1", 2) + raw.connect("limit-a2"))
    assert again.closed_by_broker()
    assert metric_sum(metrics(broker), "shardmq_connections_refused_total",
                      reason="per_address") == 1
    first.close()
    other.close()


def test_websocket_after_the_header(start_broker):
    broker = start_broker("--http-listen=127.0.0.1:0",
                          listen="ws://127.0.0.1:0/mqtt?proxy_protocol=true")
    ws = ws_raw.WsClient(broker.port, upgrade=v2("2001:db8::42", 443) + ws_raw.request())
    assert ws.connect("ws-behind-lb")[1] == 0
    ws.send(raw.pingreq())
    ws.expect(raw.PINGRESP)
    assert addresses(broker)["ws-behind-lb"] == "[2001:db8::42]:443"
    ws.close()
    # An Upgrade without the header is refused.
    with pytest.raises((ws_raw.WsRefused, ConnectionError, OSError)):
        ws_raw.WsClient(broker.port)
    assert wait_until(lambda: refused_proxy(broker) == 1)


class TlsOverMemory:
    """A TLS client over memory BIOs, so its first flight can share a send
    with the PROXY header."""

    def __init__(self, context, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    def _pump(self, step):
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                self.sock.sendall(self.outgoing.read())
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during TLS")
                self.incoming.write(data)
                continue
            self.sock.sendall(self.outgoing.read())
            return result

    def send_first(self, header):
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        self.sock.sendall(header + self.outgoing.read())  # header + ClientHello
        self._pump(self.tls.do_handshake)

    def write(self, data):
        self._pump(lambda: self.tls.write(data))

    def read(self, n):
        return self._pump(lambda: self.tls.read(n))


def test_tls_after_the_header(start_broker, certs):  # noqa: F811
    broker = start_broker("--http-listen=127.0.0.1:0", *tls_args(certs, require=False),
                          listen="tls://127.0.0.1:0?proxy_protocol=true")
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    sock.sendall(v1("203.0.113.99", 8883))
    client = raw.Client.__new__(raw.Client)
    client.sock = context.wrap_socket(sock, server_hostname="localhost")
    client.buffer, client.timeout = b"", 5.0
    assert client.connect("tls-behind-lb")[1] == 0
    assert addresses(broker)["tls-behind-lb"] == "203.0.113.99:8883"
    client.close()
    # Header and ClientHello in one segment, as a balancer forwards them: the
    # bytes after the header go on to TLS.
    tls = TlsOverMemory(context, broker.port)
    tls.send_first(v2("2001:db8::99", 9999))
    tls.write(raw.connect("tls-one-segment"))
    assert tls.read(4)[:2] == bytes([raw.CONNACK << 4, 2])
    assert addresses(broker)["tls-one-segment"] == "[2001:db8::99]:9999"
    tls.sock.close()
    # A TLS client that sends no header: its ClientHello is no PROXY header.
    bare = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        context.wrap_socket(bare, server_hostname="localhost")
    assert wait_until(lambda: refused_proxy(broker) == 1)
