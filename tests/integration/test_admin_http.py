"""The admin HTTP server on the real daemon (--http-listen): /metrics checked
against what the test did (connections, messages and bytes by QoS), /healthz,
every /api/v1 endpoint, and the token rules (401 without the right bearer
token; 403 for everything on a non-loopback listener without a token)."""
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import mqtt_raw as raw
from conftest import wait_until
from test_tls import certs  # noqa: F401  (a fixture)

ADMIN_LINE = re.compile(r"admin HTTP on http://(\S+) ")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$')


def admin_address(broker):
    for line in broker.log_lines:
        match = ADMIN_LINE.search(line)
        if match:
            return match.group(1)
    raise AssertionError("no admin HTTP line in the log:\n" + broker.log())


def request(broker, method, path, token=None, body=None, address=None):
    """(status, headers, body bytes) of one HTTP request to the admin server."""
    url = f"http://{address or admin_address(broker)}{path}"
    req = urllib.request.Request(url, method=method, data=body)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def get_json(broker, path, token=None, expect=200, method="GET", body=None):
    status, _, data = request(broker, method, path, token, body)
    assert status == expect, (status, data)
    return json.loads(data)


def parse_prometheus(text):
    """{name: [(labels dict, value)]}; checks every sample has a # TYPE."""
    typed, samples = set(), {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge"), line
            typed.add(name)
            continue
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        name, labels, value = match.groups()
        assert name in typed, f"{name} has no # TYPE"
        label_map = dict(re.findall(r'(\w+)="([^"]*)"', labels or ""))
        samples.setdefault(name, []).append((label_map, float(value)))
    return samples


def metric_sum(samples, name, **labels):
    return sum(v for l, v in samples.get(name, [])
               if all(l.get(k) == str(want) for k, want in labels.items()))


def metrics(broker, token=None):
    status, headers, data = request(broker, "GET", "/metrics", token)
    assert status == 200, data
    assert headers["Content-Type"].startswith("text/plain")
    return parse_prometheus(data.decode())


@pytest.fixture
def admin_broker(start_broker):
    return start_broker("--http-listen=127.0.0.1:0", "--sys-interval=0", shards=2)


def test_metrics_follow_connections_and_messages(admin_broker):
    broker = admin_broker
    clients = [raw.connected(broker.port, f"metrics-{i}") for i in range(10)]
    subscriber = raw.subscribed(broker.port, "metrics-sub", ("m/#", 1))
    publisher = clients[0]
    for i in range(100):
        qos = 0 if i < 60 else 1
        raw.publish_and_confirm(publisher, "m/t", b"x" * 10, qos=qos, packet_id=i + 1)
    got = raw.read_publishes(subscriber, 100, timeout=10)
    assert len(got) == 100

    def settled():
        m = metrics(broker)
        return m if metric_sum(m, "shardmq_messages_sent_total") == 100 else None

    m = wait_until(settled, timeout=5)
    assert m, "messages_sent_total never reached 100"
    assert metric_sum(m, "shardmq_messages_received_total") == 100
    assert metric_sum(m, "shardmq_messages_received_total", qos=0) == 60
    assert metric_sum(m, "shardmq_messages_received_total", qos=1) == 40
    assert metric_sum(m, "shardmq_messages_sent_total", qos=1) == 40
    assert metric_sum(m, "shardmq_publish_bytes_received_total", qos=0) == 60 * (3 + 10)
    assert metric_sum(m, "shardmq_publish_bytes_sent_total") == 100 * (3 + 10)
    assert metric_sum(m, "shardmq_connects_total") == 11
    assert metric_sum(m, "shardmq_connections_accepted_total") == 11
    assert metric_sum(m, "shardmq_connections_open") == 11
    assert metric_sum(m, "shardmq_clients_connected") == 11
    assert metric_sum(m, "shardmq_sessions") == 11
    assert metric_sum(m, "shardmq_subscriptions") == 1
    assert metric_sum(m, "shardmq_messages_dropped_total") == 0
    assert metric_sum(m, "shardmq_bytes_received_total") > 100 * 13
    assert metric_sum(m, "shardmq_gauges_up") == 1
    # Per-shard samples: one per shard, and the loop has run on each.
    assert {l["shard"] for l, _ in m["shardmq_loop_turns_total"]} == {"0", "1"}
    assert all(v > 0 for _, v in m["shardmq_loop_turns_total"])
    assert metric_sum(m, "shardmq_shard_busy_seconds_total") > 0
    assert metric_sum(m, "shardmq_shard_sleep_seconds_total") > 0
    assert metric_sum(m, "shardmq_shards") == 2

    for c in clients[5:]:
        c.close()
    assert wait_until(lambda: metric_sum(metrics(broker), "shardmq_clients_connected") == 6)
    m = metrics(broker)
    assert metric_sum(m, "shardmq_connections_closed_total") == 5
    assert metric_sum(m, "shardmq_sessions") == 6  # clean sessions end with their connection
    subscriber.close()
    for c in clients[:5]:
        c.close()


def test_dropped_no_subscribers_and_retained_gauge(admin_broker):
    broker = admin_broker
    publisher = raw.connected(broker.port, "dropper")
    for i in range(7):
        raw.publish_and_confirm(publisher, f"nobody/{i}", b"p")
    raw.publish_and_confirm(publisher, "kept/1", b"r", retain=True)
    raw.publish_and_confirm(publisher, "kept/2", b"r", qos=1, retain=True)
    m = metrics(broker)
    assert metric_sum(m, "shardmq_messages_dropped_total", reason="no_subscribers") == 7
    assert wait_until(lambda: metric_sum(metrics(broker), "shardmq_retained_messages") == 2)
    publisher.close()


def test_healthz_and_broker_info(admin_broker):
    broker = admin_broker
    status, _, body = request(broker, "GET", "/healthz")
    assert (status, body) == (200, b"ok\n")
    info = get_json(broker, "/api/v1/broker")
    assert info["shards"] == 2
    assert info["version"]
    assert info["listeners"] == [f"127.0.0.1:{broker.port}"]
    assert info["clients_connected"] == 0
    assert info["uptime_seconds"] >= 0


def test_clients_lookup_and_disconnect(admin_broker):
    broker = admin_broker
    # A persistent 3.1.1 session with one subscription, and a 5.0 client.
    keeper = raw.connected(broker.port, "keeper", clean=False)
    keeper.send(raw.subscribe(1, ("a/+", 1)))
    keeper.expect(raw.SUBACK)
    v5 = raw.connected(broker.port, "five", version=5)

    listed = get_json(broker, "/api/v1/clients")["clients"]
    by_id = {c["client_id"]: c for c in listed}
    assert set(by_id) == {"keeper", "five"}
    assert by_id["keeper"]["protocol_version"] == 4
    assert by_id["keeper"]["persistent"] is True
    assert by_id["keeper"]["connected"] is True
    assert by_id["keeper"]["subscriptions"] == [{"filter": "a/+", "qos": 1}]
    assert by_id["keeper"]["address"].startswith("127.0.0.1:")
    assert by_id["keeper"]["shard"] == raw.home_shard("keeper", 2)
    assert by_id["five"]["protocol_version"] == 5
    assert by_id["five"]["inflight"] == 0 and by_id["five"]["queued"] == 0

    one = get_json(broker, "/api/v1/clients/keeper")
    assert one["client_id"] == "keeper"
    assert get_json(broker, "/api/v1/clients/nobody", expect=404)["error"]

    subs = get_json(broker, "/api/v1/subscriptions")["subscriptions"]
    assert subs == [{"client_id": "keeper", "filter": "a/+", "qos": 1}]

    # Disconnect, keeping the session: it stays, offline, and queues.
    assert get_json(broker, "/api/v1/clients/keeper", method="DELETE")["disconnected"] == "keeper"
    assert keeper.closed_by_broker()
    offline = wait_until(lambda: not get_json(broker, "/api/v1/clients/keeper")["connected"])
    assert offline
    sender = raw.connected(broker.port, "sender")
    raw.publish_and_confirm(sender, "a/b", b"q", qos=1)
    assert wait_until(lambda: get_json(broker, "/api/v1/clients/keeper")["queued"] == 1)
    # Disconnecting an offline client without discarding is refused.
    get_json(broker, "/api/v1/clients/keeper", method="DELETE", expect=409)
    # Discarding ends the session.
    get_json(broker, "/api/v1/clients/keeper?discard_session=true", method="DELETE")
    get_json(broker, "/api/v1/clients/keeper", expect=404)

    # MQTT 5: DISCONNECT 0x98 (administrative action), session discarded.
    get_json(broker, "/api/v1/clients/five?discard_session=1", method="DELETE")
    pkt = v5.expect(raw.DISCONNECT)
    assert pkt.body[0] == 0x98
    assert wait_until(lambda: request(broker, "GET", "/api/v1/clients/five")[0] == 404)
    get_json(broker, "/api/v1/clients/five", method="DELETE", expect=404)
    sender.close()


def test_publish_and_retained(admin_broker):
    broker = admin_broker
    subscriber = raw.subscribed(broker.port, "listener", ("cmd/#", 1))
    result = get_json(broker, "/api/v1/publish?topic=cmd/lamp&qos=1&retain=true", method="POST",
                      body=b"on")
    assert result == {"published": "cmd/lamp", "qos": 1, "retain": True, "bytes": 2}
    (got,) = raw.read_publishes(subscriber, 1)
    assert (got["topic"], got["payload"], got["qos"]) == ("cmd/lamp", b"on", 1)

    get_json(broker, "/api/v1/publish?topic=cmd/bin&retain=1", method="POST", body=b"\xff\x00")
    raw.read_publishes(subscriber, 1)
    retained = wait_until(
        lambda: get_json(broker, "/api/v1/retained")["retained"] if len(
            get_json(broker, "/api/v1/retained")["retained"]) == 2 else None)
    assert retained
    by_topic = {r["topic"]: r for r in retained}
    assert by_topic["cmd/lamp"]["payload"] == "on"
    assert by_topic["cmd/lamp"]["qos"] == 1
    assert by_topic["cmd/bin"]["payload"] is None
    assert by_topic["cmd/bin"]["payload_base64"] == "/wA="
    assert get_json(broker, "/api/v1/retained/cmd/lamp")["payload"] == "on"
    assert get_json(broker, "/api/v1/retained?filter=" + urllib.parse.quote("cmd/+"))["retained"]
    get_json(broker, "/api/v1/retained/cmd/none", expect=404)

    assert get_json(broker, "/api/v1/retained/cmd/lamp", method="DELETE") == {
        "deleted": "cmd/lamp"}
    assert wait_until(lambda: request(broker, "GET", "/api/v1/retained/cmd/lamp")[0] == 404)
    # A new subscriber gets only what is still retained.
    late = raw.subscribed(broker.port, "late", ("cmd/#", 0))
    (only,) = raw.read_publishes(late, 1)
    assert only["topic"] == "cmd/bin" and only["retain"]
    assert late.no_packet(0.3)

    # Bad requests.
    get_json(broker, "/api/v1/publish?qos=1", method="POST", body=b"", expect=400)
    get_json(broker, "/api/v1/publish?topic=a/%23", method="POST", body=b"", expect=400)
    get_json(broker, "/api/v1/publish?topic=a&qos=3", method="POST", body=b"", expect=400)
    subscriber.close()
    late.close()


def test_token_required(start_broker, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    broker = start_broker("--http-listen=127.0.0.1:0", f"--http-token-file={token_file}",
                          "--sys-interval=0")
    for path in ("/metrics", "/healthz", "/api/v1/clients", "/api/v1/broker"):
        status, headers, _ = request(broker, "GET", path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert request(broker, "GET", path, token="wrong")[0] == 401
        assert request(broker, "GET", path, token="s3cret-token")[0] == 200
    status, _, _ = request(broker, "POST", "/api/v1/publish?topic=x", token="s3cret-tokem",
                           body=b"")
    assert status == 401


def test_no_token_refuses_everything_off_loopback(start_broker):
    # 0.0.0.0 is not loopback: without a token every request is refused,
    # even from this machine.
    broker = start_broker("--http-listen=0.0.0.0:0", "--sys-interval=0")
    port = admin_address(broker).rpartition(":")[2]
    for path in ("/metrics", "/healthz", "/api/v1/clients"):
        status, _, body = request(broker, "GET", path, address=f"127.0.0.1:{port}")
        assert status == 403, path
        assert b"token" in body
    assert "refuses every request" in broker.log()


def test_flag_errors(start_broker):
    import subprocess
    from conftest import BINARY
    for args, needle in (
        (["--http-token=abc"], "has no effect without --http-listen"),
        (["--http-listen=nonsense"], "--http-listen=nonsense"),
        (["--http-listen=127.0.0.1:0", "--http-token=a", "--http-token-file=/nonexistent"],
         "not both"),
        (["--http-listen=127.0.0.1:0", "--http-token-file=/nonexistent"], "cannot be read"),
        (["--http-listen=https://127.0.0.1:0"], "HTTPS needs --tls-cert and --tls-key"),
        (["--http-listen=127.0.0.1:0?proxy_protocol=true"], "give host:port (HTTP) or https://"),
    ):
        done = subprocess.run([str(BINARY), "--listen=127.0.0.1:0", *args],
                              capture_output=True, text=True, timeout=10)
        assert done.returncode == 2, (args, done.stderr)
        assert needle in done.stderr, (args, done.stderr)


def test_https_admin_server(start_broker, certs):  # noqa: F811
    """https:// serves the same API over TLS with the broker's certificate
    (no tls:// MQTT listener needed); plain HTTP to that port gets nothing."""
    broker = start_broker(f"--tls-cert={certs / 'server.pem'}",
                          f"--tls-key={certs / 'server.key'}",
                          "--http-listen=https://127.0.0.1:0", "--http-token=t0ken",
                          "--sys-interval=0")
    match = re.search(r"admin HTTP on https://(\S+) ", broker.log())
    assert match, broker.log()
    address = match.group(1)
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))

    def get(path, token):
        req = urllib.request.Request(f"https://{address}{path}")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=10, context=context) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    status, body = get("/api/v1/broker", "t0ken")
    assert status == 200, body
    assert json.loads(body)["shards"] >= 1
    assert get("/healthz", None)[0] == 401
    # A client that does not trust the certificate is refused by TLS itself.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"https://{address}/healthz", timeout=10)
    # Plain HTTP to the HTTPS port is not answered as HTTP.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        with urllib.request.urlopen(f"http://{address}/healthz", timeout=5) as response:
            response.read()
