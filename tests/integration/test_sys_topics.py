"""$SYS/broker/... topics on the real daemon (--sys-interval): retained, in
Mosquitto's layout, following what clients do, read with mosquitto_sub and
a raw client, refused to a user the ACL file does not let read them, and
absent with --sys-interval=0."""
import shutil
import subprocess

import pytest

import mqtt_raw as raw
from conftest import wait_until

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
MOSQUITTO_SUB = shutil.which("mosquitto_sub")


def drain(client, values, quiet=0.3):
    """Reads PUBLISH packets until `quiet` seconds pass without one, keeping
    the latest value per topic in `values`; returns `values`."""
    try:
        while True:
            fields = client.read(quiet).publish_fields()
            values[fields["topic"]] = fields["payload"].decode()
    except (TimeoutError, OSError):
        pass
    return values


def sys_values(port, client_id, filter_="$SYS/broker/#", quiet=0.5):
    """{topic: value} of the retained $SYS messages a new subscriber gets."""
    client = raw.subscribed(port, client_id, (filter_, 0))
    values = drain(client, {}, quiet)
    client.close()
    return values


def test_sys_topics_follow_the_broker(start_broker):
    broker = start_broker("--sys-interval=1", shards=2)
    values = wait_until(lambda: sys_values(broker.port, "sys-reader-0"), timeout=5)
    assert values["$SYS/broker/version"].startswith("shardmq version ")
    assert values["$SYS/broker/uptime"].endswith(" seconds")
    for topic in ("clients/connected", "clients/total", "messages/received", "messages/sent",
                  "bytes/received", "bytes/sent", "subscriptions/count",
                  "retained messages/count", "load/messages/received/1min",
                  "load/bytes/sent/15min", "publish/messages/dropped"):
        assert f"$SYS/broker/{topic}" in values, topic

    # A reader that stays: it sees each new value as it is published.
    reader = raw.subscribed(broker.port, "sys-reader", ("$SYS/broker/#", 0))
    seen = drain(reader, {})
    clients = [raw.connected(broker.port, f"sys-client-{i}") for i in range(4)]
    subscriber = raw.subscribed(broker.port, "sys-sub", ("data/#", 0))
    for i in range(20):
        raw.publish_and_confirm(clients[0], "data/x", b"12345")
    raw.read_publishes(subscriber, 20)

    def caught_up():
        drain(reader, seen)
        # 4 clients, the subscriber and the reader.
        return (seen.get("$SYS/broker/clients/connected") == "6"
                and seen.get("$SYS/broker/publish/messages/received") == "20")

    assert wait_until(caught_up, timeout=6), seen
    assert seen["$SYS/broker/subscriptions/count"] == "2"  # data/# and the reader's
    assert seen["$SYS/broker/publish/bytes/received"] == str(20 * (6 + 5))
    assert int(seen["$SYS/broker/messages/sent"]) >= 20
    assert wait_until(lambda: float(
        drain(reader, seen)["$SYS/broker/load/publish/received/1min"]) > 0, timeout=4)
    for c in clients:
        c.close()
    subscriber.close()
    reader.close()


def test_sys_topics_off(start_broker):
    broker = start_broker("--sys-interval=0")
    assert sys_values(broker.port, "sys-none", quiet=1.5) == {}


@pytest.mark.skipif(not (MOSQUITTO_PASSWD and MOSQUITTO_SUB),
                    reason="needs mosquitto-clients and mosquitto_passwd")
def test_sys_topics_with_mosquitto_sub_and_acl(start_broker, tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(passwd), "watcher", "pw1"], check=True)
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), "other", "pw2"], check=True)
    acl = tmp_path / "acl"
    acl.write_text("user watcher\ntopic read $SYS/#\n\nuser other\ntopic readwrite other/#\n")
    broker = start_broker("--sys-interval=1", f"--password-file={passwd}", f"--acl-file={acl}")

    def sub(user, password, topic):
        return subprocess.run(
            [MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(broker.port), "-u", user, "-P",
             password, "-t", topic, "-C", "1", "-W", "3", "-v"],
            capture_output=True, text=True, timeout=15)

    allowed = wait_until(lambda: sub("watcher", "pw1", "$SYS/broker/version").stdout, timeout=8)
    assert allowed.startswith("$SYS/broker/version shardmq version "), allowed
    denied = sub("other", "pw2", "$SYS/broker/#")
    assert denied.stdout == "", denied
    assert sub("other", "pw2", "$SYS/broker/uptime").stdout == ""
