"""Durable retained messages (issue 9, first slice): --data-dir and
--durability with the real daemon and real clients. Retained messages (QoS
0/1, MQTT 5 with properties and expiry) survive a SIGTERM restart, a kill -9
right after a sync-mode PUBACK, and a changed --shards; a flipped byte in the
middle of a log stops start-up naming the file and offset; a torn tail is cut
and the records before it kept."""
import os
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

from conftest import BINARY, RunningBroker, fill_up, wait_until


def pub(port, topic, payload, qos=1, v5_props=(), null=False):
    """mosquitto_pub -r; returns once the broker acknowledged (QoS 1) or the
    packet was sent (QoS 0)."""
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", str(qos),
            "-r"]
    args += ["-n"] if null else ["-m", payload]
    if v5_props:
        args += ["-V", "mqttv5"]
        for prop in v5_props:
            args += ["-D", "publish", *prop]
    subprocess.run(args, check=True, timeout=10)


def retained_set(port, topic_filter="#", settle=0.7):
    """What a new MQTT 5 subscriber to `topic_filter` receives as retained:
    {topic: (payload, qos, properties as a dict)}."""
    got = {}
    subscribed = threading.Event()
    client = paho.Client(client_id="", protocol=paho.MQTTv5)

    def on_message(c, u, m):
        if not m.retain:
            return  # published live while we listened: not part of the retained set
        props = {}
        p = getattr(m, "properties", None)
        if p is not None:
            for name in ("ContentType", "ResponseTopic", "CorrelationData",
                         "PayloadFormatIndicator", "UserProperty", "MessageExpiryInterval"):
                if hasattr(p, name):
                    props[name] = getattr(p, name)
        got[m.topic] = (m.payload, m.qos, props)

    client.on_message = on_message
    client.on_subscribe = lambda *a, **k: subscribed.set()
    client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(topic_filter, 2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert subscribed.wait(5)
    time.sleep(settle)
    client.disconnect()
    client.loop_stop()
    return got


def durable(data_dir, *more):
    return [f"--data-dir={data_dir}", *more]


def payloads(found):
    return {topic: (payload, qos) for topic, (payload, qos, _) in found.items()}


def test_retained_set_survives_a_restart_with_properties(start_broker, tmp_path):
    data = tmp_path / "data"
    broker = start_broker(*durable(data), shards=2)
    pub(broker.port, "d/zero", "qos0", qos=0)
    pub(broker.port, "d/one", "qos1", qos=1)
    pub(broker.port, "d/props", "with props", qos=1,
        v5_props=[("content-type", "text/plain"), ("user-property", "k", "v"),
                  ("response-topic", "reply/t"), ("correlation-data", "corr"),
                  ("message-expiry-interval", "3600")])
    pub(broker.port, "d/short", "expires", qos=1, v5_props=[("message-expiry-interval", "1")])
    pub(broker.port, "d/cleared", "soon gone", qos=1)
    pub(broker.port, "d/cleared", "", qos=1, null=True)
    pub(broker.port, "d/replaced", "first", qos=1)
    pub(broker.port, "d/replaced", "second", qos=0)
    before = retained_set(broker.port)
    assert broker.stop() == 0
    assert "d/short" in before
    time.sleep(1.5)  # d/short's expiry passes while the broker is down

    broker = start_broker(*durable(data), shards=2)
    after = retained_set(broker.port)
    assert payloads(after) == {
        "d/zero": (b"qos0", 0),
        "d/one": (b"qos1", 1),
        "d/props": (b"with props", 1),
        "d/replaced": (b"second", 0),
    }
    props = after["d/props"][2]
    assert props["ContentType"] == "text/plain"
    assert props["UserProperty"] == [("k", "v")]
    assert props["ResponseTopic"] == "reply/t"
    assert props["CorrelationData"] == b"corr"
    assert 3500 < props["MessageExpiryInterval"] <= 3600
    assert "dropped as expired: 1 retained" in broker.log(), broker.log()


def test_without_data_dir_nothing_survives(start_broker, tmp_path):
    broker = start_broker(shards=1)
    pub(broker.port, "m/one", "x")
    assert broker.stop() == 0
    broker = start_broker(shards=1)
    assert retained_set(broker.port) == {}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_puback_means_stored_even_after_kill_9(start_broker, tmp_path, mode):
    # sync: on stable storage before the PUBACK; async: in the kernel by the
    # end of the loop turn, which a crash of the broker alone cannot lose.
    data = tmp_path / "data"
    broker = start_broker(*durable(data, f"--durability={mode}"), shards=3)
    # Several topics, so some have the receiving shard as owner and some not.
    topics = [f"k9/{n}" for n in range(8)]
    for topic in topics:
        pub(broker.port, topic, "v-" + topic, qos=1)
    # mosquitto_pub returned after its PUBACK: kill at once, no time to flush.
    broker.process.kill()
    broker.process.wait()
    broker = start_broker(*durable(data, f"--durability={mode}"), shards=3)
    assert payloads(retained_set(broker.port)) == {t: (b"v-" + t.encode(), 1) for t in topics}


def test_a_changed_shard_count_keeps_the_newest_of_each_topic(start_broker, tmp_path):
    data = tmp_path / "data"
    broker = start_broker(*durable(data), shards=4)
    for n in range(12):
        pub(broker.port, f"s/{n}", f"four-{n}", qos=1)
    assert broker.stop() == 0

    broker = start_broker(*durable(data), shards=1)
    assert payloads(retained_set(broker.port)) == {f"s/{n}": (f"four-{n}".encode(), 1)
                                                    for n in range(12)}
    # Changes made with one shard must win over the four-shard logs.
    pub(broker.port, "s/0", "one-0", qos=1)
    pub(broker.port, "s/1", "", qos=1, null=True)
    assert broker.stop() == 0

    broker = start_broker(*durable(data), shards=3)
    expected = {f"s/{n}": (f"four-{n}".encode(), 1) for n in range(2, 12)}
    expected["s/0"] = (b"one-0", 1)
    assert payloads(retained_set(broker.port)) == expected


def segment_with_records(data, shard=0):
    files = sorted((data / f"shard-{shard}").glob("*.log"), key=lambda p: p.stat().st_size)
    assert files and files[-1].stat().st_size > 24, list(files)
    return files[-1]


def fill(data, count=20, shards=1):
    broker = RunningBroker(*durable(data), shards=shards)
    try:
        for n in range(count):
            pub(broker.port, f"f/{n}", f"payload number {n}", qos=1)
    finally:
        assert broker.stop() == 0


def test_a_flipped_byte_in_the_middle_stops_start_up_naming_file_and_offset(tmp_path):
    data = tmp_path / "data"
    fill(data)
    segment = segment_with_records(data)
    raw = bytearray(segment.read_bytes())
    middle = len(raw) // 2
    raw[middle] ^= 0xFF
    segment.write_bytes(bytes(raw))
    result = subprocess.run([str(BINARY), "--shards=1", "--listen=127.0.0.1:0",
                             f"--data-dir={data}"], capture_output=True, text=True, timeout=15)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert str(segment) in output, output
    assert "offset" in output, output
    assert "started:" not in output

    # --salvage starts with the records around the damage and says what it skipped.
    broker = RunningBroker(*durable(data, "--salvage"), shards=1)
    try:
        assert "salvage skipped" in broker.log(), broker.log()
        found = payloads(retained_set(broker.port))
        assert 10 <= len(found) < 20, found
        assert all(found[t] == (f"payload number {t[2:]}".encode(), 1) for t in found)
    finally:
        assert broker.stop() == 0


def test_sys_topics_are_not_stored(start_broker, tmp_path):
    data = tmp_path / "data"
    broker = start_broker(*durable(data), "--sys-interval=1", shards=1)
    # A subscriber that arrives while the first $SYS values are being
    # published gets them live (retain 0): ask again until they are retained.
    assert wait_until(
        lambda: "$SYS/broker/uptime" in retained_set(broker.port, "$SYS/#", settle=1.0),
        timeout=15)
    assert broker.stop() == 0
    assert b"$SYS" not in b"".join(p.read_bytes() for p in data.glob("shard-*/*.log"))


def test_a_torn_tail_is_cut_and_the_records_before_it_kept(start_broker, tmp_path):
    data = tmp_path / "data"
    fill(data, count=10)
    segment = segment_with_records(data)
    size = segment.stat().st_size
    os.truncate(segment, size - 5)  # the last record (f/9) loses its end
    broker = start_broker(*durable(data), shards=1)
    assert "torn tail" in broker.log(), broker.log()
    assert str(segment) in broker.log()
    assert payloads(retained_set(broker.port)) == {
        f"f/{n}": (f"payload number {n}".encode(), 1) for n in range(9)}


def test_a_second_broker_on_the_same_data_dir_is_refused(start_broker, tmp_path):
    data = tmp_path / "data"
    first = start_broker(*durable(data), shards=1)
    pub(first.port, "lock/a", "kept")
    result = subprocess.run([str(BINARY), "--shards=1", "--listen=127.0.0.1:0",
                             f"--data-dir={data}"], capture_output=True, text=True, timeout=15)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"data directory {data} is in use by another shardmq (pid {first.process.pid}" \
        in output, output
    # The first broker was not disturbed, and after it stops the directory is free.
    assert payloads(retained_set(first.port)) == {"lock/a": (b"kept", 1)}
    assert first.stop() == 0
    second = start_broker(*durable(data), shards=1)
    assert payloads(retained_set(second.port)) == {"lock/a": (b"kept", 1)}


def test_bad_durability_flags_are_refused(tmp_path):
    for flags, why in ((["--durability=maybe"], "must be none, async or sync"),
                       (["--durability=sync"], "needs --data-dir"),
                       ([f"--data-dir={tmp_path}", "--durability-flush-ms=0"],
                        "must be between 1 and 60000")):
        result = subprocess.run([str(BINARY), "--shards=1", "--listen=127.0.0.1:0", *flags],
                                capture_output=True, text=True, timeout=15)
        assert result.returncode == 2, (flags, result.stdout, result.stderr)
        assert why in result.stdout + result.stderr, (flags, result.stdout + result.stderr)


@pytest.mark.parametrize("same_shard", [True, False])
def test_sync_mode_holds_the_puback_while_the_disk_is_full(start_broker, small_disk, same_shard):
    import mqtt_raw as raw
    shards = 2
    client_id = "full-disk-pub"
    home = raw.home_shard(client_id, shards)
    # The topic's owner shard logs it: the publisher's own shard, or the other
    # one (then the acknowledgement travels back by mail).
    topic = next(t for t in (f"full/{n}" for n in range(100))
                 if (raw.home_shard(t, shards) == home) == same_shard)
    data = small_disk / "data"
    broker = start_broker(*durable(data, "--durability=sync"), shards=shards)
    pub(broker.port, "full/before", "stored before", qos=1)
    filler = fill_up(small_disk)

    client = paho.Client(client_id, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    # Larger than a page: tmpfs would fit a small record in the segment's
    # last page, full disk or not.
    big = b"while full " * 1000
    info = client.publish(topic, big, qos=1, retain=True)
    time.sleep(1.5)
    assert not info.is_published(), "PUBACK for a retained message that could not be stored"
    assert "No space left on device" in broker.log()
    # Plain messages are still served meanwhile.
    plain = client.publish("full/plain", b"not retained", qos=1)
    plain.wait_for_publish(3)
    assert plain.is_published()

    filler.unlink()
    info.wait_for_publish(5)  # the held write is retried every second
    assert info.is_published()
    client.disconnect()
    client.loop_stop()
    assert broker.stop() == 0
    broker = start_broker(*durable(data, "--durability=sync"), shards=shards)
    assert payloads(retained_set(broker.port, "full/#")) == {
        "full/before": (b"stored before", 1), topic: (big, 1)}
