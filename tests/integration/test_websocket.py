"""MQTT over WebSocket listeners (ws://, wss://) against the real binary:
MQTT.js in Node for 3.1.1 and 5.0 (plain and over TLS), a raw client for
split and merged frames, pings, close frames, protocol violations and bad
handshakes, and MQTT.js's browser bundle in headless Chromium."""

import html
import http.server
import json
import pathlib
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading

import pytest

import mqtt_raw
from conftest import BINARY as SHARDMQ_BINARY
from mqtt_raw import CONNACK, PUBLISH, SUBACK
from test_tls import certs, tls_args  # noqa: F401  (certs is a fixture)
from ws_raw import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, WsClient, WsRefused, frame, request

HERE = pathlib.Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"


def start_ws(start_broker, *args, shards=2, scheme="ws", path="/mqtt"):
    return start_broker(*args, shards=shards, listen=f"{scheme}://127.0.0.1:0{path}")


def big_sum(n):
    """What mqttjs_ws_client.js's checksum gives for its big payload."""
    return sum((i * 7) % 251 for i in range(n)) % 1000003


def run_mqttjs_ws(*args, timeout=40):
    if not (NODE_MODULES / "mqtt").is_dir():
        pytest.fail("MQTT.js is missing: run npm ci in tests/integration (tools/test does)")
    result = subprocess.run(["node", str(HERE / "mqttjs_ws_client.js"), *map(str, args)],
                            capture_output=True, text=True, timeout=timeout, cwd=HERE)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_mqttjs_result(result, count, big):
    assert result["why"] == "done", result
    small = sorted((m for m in result["received"] if m["topic"] != "ws/big"),
                   key=lambda m: int(m["topic"].rsplit("/", 1)[1]))
    assert [m["head"] for m in small] == [f"m{i}" for i in range(count)]
    (large,) = [m for m in result["received"] if m["topic"] == "ws/big"]
    assert large["length"] == big
    assert large["sum"] == big_sum(big)
    assert large["qos"] == 1


@pytest.mark.parametrize("protocol_version", [4, 5])
def test_mqttjs_over_ws(start_broker, protocol_version):
    broker = start_ws(start_broker)
    # 200 kB: far more than one frame either way, and one TCP read.
    result = run_mqttjs_ws("--url", f"ws://127.0.0.1:{broker.port}/mqtt", "--protocol-version",
                           protocol_version, "--count", 20, "--big", 200000, "--client-id",
                           f"js-ws-{protocol_version}")
    check_mqttjs_result(result, 20, 200000)


@pytest.mark.parametrize("protocol_version", [4, 5])
def test_mqttjs_over_wss(start_broker, certs, protocol_version):  # noqa: F811
    broker = start_ws(start_broker, *tls_args(certs, require=False), scheme="wss")
    result = run_mqttjs_ws("--url", f"wss://127.0.0.1:{broker.port}/mqtt", "--ca",
                           certs / "ca.pem", "--protocol-version", protocol_version, "--count",
                           5, "--big", 100000, "--client-id", f"js-wss-{protocol_version}")
    check_mqttjs_result(result, 5, 100000)


def test_ws_and_tcp_clients_talk_to_each_other(start_broker):
    broker = start_broker(shards=2, listen="127.0.0.1:0,ws://127.0.0.1:0/mqtt")
    ws_port = int(broker.addresses[1].rpartition(":")[2])
    ws = WsClient(ws_port)
    ws.connect("ws-sub")
    ws.send(mqtt_raw.subscribe(1, ("x/#", 1)))
    ws.expect(SUBACK)
    tcp = mqtt_raw.Client(broker.port)
    tcp.connect("tcp-pub")
    tcp.send(mqtt_raw.publish("x/y", b"over tcp", qos=0))
    pkt = ws.expect(PUBLISH)
    assert pkt.publish_fields()["payload"] == b"over tcp"
    ws.close()
    tcp.close()


def test_split_and_merged_frames(start_broker):
    broker = start_ws(start_broker)
    client = WsClient(broker.port)
    # CONNECT and SUBSCRIBE merged into one frame.
    client.send(mqtt_raw.connect("raw-ws") + mqtt_raw.subscribe(1, ("t/#", 0)))
    client.expect(CONNACK)
    client.expect(SUBACK)
    # One PUBLISH over a fragmented message of three frames, sent byte by
    # byte in part, then two PUBLISHes in one frame, then a PUBLISH whose
    # first half ends the frame carrying a PINGREQ.
    one = mqtt_raw.publish("t/one", b"a" * 300)
    wire = (frame(BINARY, one[:5], fin=False) + frame(CONTINUATION, one[5:200], fin=False) +
            frame(CONTINUATION, one[200:]))
    for i in range(0, 40):
        client.send_raw(wire[i:i + 1])
    client.send_raw(wire[40:])
    two = mqtt_raw.publish("t/two", b"b") + mqtt_raw.publish("t/three", b"c" * 70000)
    client.send_raw(frame(BINARY, two))
    four = mqtt_raw.publish("t/four", b"d")
    client.send_raw(frame(BINARY, mqtt_raw.pingreq() + four[:3]) + frame(BINARY, four[3:]))
    got = []
    while len(got) < 4:
        pkt = client.read()
        if pkt.type == PUBLISH:
            fields = pkt.publish_fields()
            got.append((fields["topic"], len(fields["payload"])))
    assert got == [("t/one", 300), ("t/two", 1), ("t/three", 70000), ("t/four", 1)]
    client.close()


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_hand_offs_keep_undecoded_frames(start_broker, certs, scheme):  # noqa: F811
    """CONNECT and SUBSCRIBE in two frames sent back to back: when the
    CONNECT moves the connection to its home shard, a SUBSCRIBE frame that
    arrived meanwhile (over wss: a second TLS record, still encrypted) moves
    with it."""
    extra = tls_args(certs, require=False) if scheme == "wss" else []
    broker = start_ws(start_broker, *extra, shards=4, scheme=scheme)
    context = ssl.create_default_context(cafile=str(certs / "ca.pem")) if scheme == "wss" else None
    ids = mqtt_raw.spread_ids("handoff-", 8, 4)
    clients = []
    for cid in ids:
        client = WsClient(broker.port, ssl_context=context)
        client.send_raw(frame(BINARY, mqtt_raw.connect(cid)))
        client.send_raw(frame(BINARY, mqtt_raw.subscribe(1, (f"h/{cid}", 0))))
        client.expect(CONNACK)
        client.expect(SUBACK)
        clients.append(client)
    for cid, client in zip(ids, clients):
        client.send(mqtt_raw.publish(f"h/{ids[0]}", cid.encode()))
    got = sorted(clients[0].expect(PUBLISH).publish_fields()["payload"] for _ in ids)
    assert got == sorted(cid.encode() for cid in ids)
    for client in clients:
        client.close()


def test_ping_pong_and_close(start_broker):
    broker = start_ws(start_broker)
    client = WsClient(broker.port)
    client.connect("pinger")
    client.send_raw(frame(PING, b"hello?"))
    assert client.wait_control(PONG) == b"hello?"
    client.send_raw(frame(PONG, b"unsolicited"))  # ignored
    client.send(mqtt_raw.pingreq())
    assert client.read().type == mqtt_raw.PINGRESP
    client.send_raw(frame(CLOSE, struct.pack("!H", 1000) + b"bye"))
    assert client.wait_control(CLOSE) == struct.pack("!H", 1000)
    assert client.closed_by_broker()


def test_broker_close_sends_close_frame(start_broker):
    broker = start_ws(start_broker)
    client = WsClient(broker.port)
    client.connect("leaver")
    client.send(mqtt_raw.disconnect())
    assert client.wait_control(CLOSE) == struct.pack("!H", 1000)
    assert client.closed_by_broker()


@pytest.mark.parametrize("bad, code", [
    (frame(TEXT, b"{}"), 1003),
    (frame(BINARY, b"\xc0\x00", mask=False), 1002),
    (frame(BINARY, b"\xc0\x00", rsv=4), 1002),
    (frame(CONTINUATION, b"\xc0\x00"), 1002),
    (frame(PING, b"x", fin=False), 1002),
], ids=["text", "unmasked", "rsv", "stray-continuation", "fragmented-ping"])
def test_protocol_violations_close_the_connection(start_broker, bad, code):
    broker = start_ws(start_broker)
    client = WsClient(broker.port)
    client.connect("violator")
    client.send_raw(bad)
    assert client.wait_control(CLOSE) == struct.pack("!H", code)
    assert client.closed_by_broker()
    # The broker is fine: a new client connects.
    again = WsClient(broker.port)
    again.connect("after")
    again.close()


@pytest.mark.parametrize("upgrade", [
    request("/other"),
    request(protocol=None),
    request(protocol="chat"),
    request(version="8"),
    request(key="not-a-key"),
    b"POST /mqtt HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["path", "no-protocol", "other-protocol", "version-8", "bad-key", "post"])
def test_bad_handshake_gets_400(start_broker, upgrade):
    broker = start_ws(start_broker)
    with pytest.raises(WsRefused) as refused:
        WsClient(broker.port, upgrade=upgrade)
    assert refused.value.status.startswith("HTTP/1.1 400"), refused.value.response
    sock = socket.create_connection(("127.0.0.1", broker.port), timeout=5)
    sock.sendall(upgrade)
    data = b""
    while chunk := sock.recv(4096):  # the broker closes after the answer
        data += chunk
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    sock.close()


def test_plain_mqtt_on_ws_port_gets_no_connack(start_broker):
    broker = start_ws(start_broker)
    client = mqtt_raw.Client(broker.port)
    client.send(mqtt_raw.connect("lost"))
    assert client.no_packet(0.5)
    client.close()


def test_default_and_custom_paths(start_broker):
    broker = start_broker(shards=1, listen="ws://127.0.0.1:0")  # path defaults to /mqtt
    WsClient(broker.port).connect("default-path")
    other = start_ws(start_broker, shards=1, path="/brokers/a")
    WsClient(other.port, path="/brokers/a").connect("custom-path")
    with pytest.raises(WsRefused):
        WsClient(other.port, path="/mqtt")


def test_raw_wss(start_broker, certs):  # noqa: F811
    broker = start_ws(start_broker, *tls_args(certs, require=False), scheme="wss")
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    client = WsClient(broker.port, ssl_context=context)
    client.send(mqtt_raw.connect("raw-wss") + mqtt_raw.subscribe(1, ("s/#", 0)))
    client.expect(CONNACK)
    client.expect(SUBACK)
    client.send(mqtt_raw.publish("s/big", b"e" * 100000))
    assert len(client.expect(PUBLISH).publish_fields()["payload"]) == 100000
    client.send_raw(frame(PING, b"tls"))
    assert client.wait_control(PONG) == b"tls"
    client.close()


# ---------------------------------------------------------------------------
# Headless Chromium with MQTT.js's browser bundle.

PAGE = """<!doctype html>
<html><head><title>pending</title></head><body>
<pre id="result">pending</pre>
<script src="/mqtt.min.js"></script>
<script>
const query = new URLSearchParams(location.search);
const version = Number(query.get('v'));
const out = { version, received: [] };
let finished = false;
function done(why) {
  if (finished) return;
  finished = true;
  out.why = why;
  const text = JSON.stringify(out);
  document.getElementById('result').textContent = text;
  fetch('/result', { method: 'POST', body: text });
}
setTimeout(() => done('timeout'), 15000);
try {
  const client = mqtt.connect(`ws://127.0.0.1:${query.get('port')}/mqtt`, {
    protocolVersion: version, clientId: `browser-${version}`, reconnectPeriod: 0,
    connectTimeout: 5000 });
  client.on('error', (e) => { out.error = String(e); done('error'); });
  client.on('message', (topic, payload, packet) => {
    out.received.push({ topic, length: payload.length, head: payload.slice(0, 8).toString(),
                        qos: packet.qos });
    if (out.received.length === 3) { client.end(); done('done'); }
  });
  client.on('connect', () => {
    client.subscribe('browser/#', { qos: 1 }, (err) => {
      if (err) { out.error = String(err); return done('suback-error'); }
      client.publish('browser/a', 'hello', { qos: 0 });
      client.publish('browser/b', 'world', { qos: 1 });
      client.publish('browser/big', 'z'.repeat(70000), { qos: 1 });
    });
  });
} catch (e) { out.error = String(e); done('exception'); }
</script>
<img src="/hold" alt="">
</body></html>
"""


class PageServer:
    """Serves the page and the bundle; /hold answers only once the page
    POSTed its result, which keeps the page's load event (and so Chromium's
    --dump-dom) waiting for the MQTT exchange."""

    def __init__(self):
        self.result = None
        self.posted = threading.Event()
        bundle = (NODE_MODULES / "mqtt" / "dist" / "mqtt.min.js").read_bytes()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, code, body=b"", content_type="text/plain"):
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/page"):
                    self.reply(200, PAGE.encode(), "text/html")
                elif self.path == "/mqtt.min.js":
                    self.reply(200, bundle, "text/javascript")
                elif self.path == "/hold":
                    owner.posted.wait(30)
                    self.reply(404)
                else:
                    self.reply(404)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                owner.result = json.loads(self.rfile.read(length))
                owner.posted.set()
                self.reply(204)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.posted.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("protocol_version", [4, 5])
def test_browser_mqttjs_over_ws(start_broker, tmp_path, protocol_version):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (tools/test installs it)")
    if not (NODE_MODULES / "mqtt" / "dist" / "mqtt.min.js").is_file():
        pytest.fail("MQTT.js is missing: run npm ci in tests/integration (tools/test does)")
    broker = start_ws(start_broker)
    pages = PageServer()
    try:
        url = f"http://127.0.0.1:{pages.port}/page?port={broker.port}&v={protocol_version}"
        run = subprocess.run(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=90)
    finally:
        pages.close()
    match = re.search(r'<pre id="result">(.*?)</pre>', run.stdout, re.S)
    assert match, f"no result in the page (posted: {pages.result})\n{run.stdout}\n{run.stderr[-3000:]}"
    result = json.loads(html.unescape(match.group(1)))
    assert result == pages.result
    assert result["why"] == "done", result
    got = sorted((m["topic"], m["length"], m["head"], m["qos"]) for m in result["received"])
    assert got == [("browser/a", 5, "hello", 0), ("browser/b", 5, "world", 1),
                   ("browser/big", 70000, "zzzzzzzz", 1)]


@pytest.mark.parametrize("args, code, message", [
    (["--listen=ws://127.0.0.1:0/a#b"], 2, "is not a plain path"),
    (["--listen=ws://127.0.0.1:0/a?b=1"], 2, "unknown option \"b\""),
    (["--listen=tcp://127.0.0.1:0/mqtt"], 2, "only ws:// and wss:// addresses have a path"),
    # Found when the broker is created, like tls:// without a certificate.
    (["--listen=wss://127.0.0.1:0/mqtt"], 1, "a TLS listener needs --tls-cert and --tls-key"),
])
def test_bad_ws_listeners_stop_startup(args, code, message):
    result = subprocess.run([str(SHARDMQ_BINARY), *args], capture_output=True, text=True,
                            timeout=20)
    assert result.returncode == code, result.stderr
    assert message in result.stderr, result.stderr


def test_tls_flags_count_a_wss_listener(start_broker, certs):  # noqa: F811
    """--tls-cert without a tls:// listener is refused, but wss:// uses it."""
    broker = start_broker(*tls_args(certs, require=False), shards=1,
                          listen="wss://127.0.0.1:0/mqtt")
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    assert WsClient(broker.port, ssl_context=context).connect("tls-flags")[1] == 0
