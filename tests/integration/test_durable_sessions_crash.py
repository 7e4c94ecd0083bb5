"""Durable persistent sessions (issue 9) under crashes, with the real daemon
and real clients: Clean Session 0 / MQTT 5 sessions with an expiry, their
subscriptions, queued and in-flight QoS 1/2 messages and inbound QoS 2
packet ids.

- A crash loop (helpers/crash_harness.py) kills the broker with SIGKILL 6-10
  times under load and restarts it on the same port and data directory. With
  --durability=sync nothing acknowledged may be lost and no QoS 2 message may
  arrive twice; with async only what was acknowledged within a second of a
  kill may be lost; with none the same loop must see losses (the harness can
  fail).
- Deterministic kill -9 checks of the pieces the loop relies on, with raw
  clients: a SUBACK means the subscription is stored; in-flight messages to a
  subscriber come back with their packet ids (DUP) and a released QoS 2 one
  as PUBREL; an inbound QoS 2 packet id is remembered until PUBREL; QoS 2
  PUBLISHes cut by a kill and resent reach a subscriber on each of two
  shards exactly once.
- Offline queues survive a SIGTERM restart and a kill -9 in order, with
  session present and working subscriptions; an MQTT 5 session whose expiry
  passes while the broker is down is gone, a longer one is not.
- Sessions and their queues follow a changed --shards (2, then 3, then 1).

SHARDMQ_CRASH_SEED=N repeats a crash loop's kill schedule; run with -s to see
the summaries of passing loops too.
"""
import re
import signal
import time

import pytest

import mqtt5_wire as w5
import mqtt_raw as raw
from conftest import wait_until
from helpers.crash_harness import CrashLoop, ranges, start_on_port

SESSION_EXPIRY = 3600
ASYNC_GRACE = 1.0  # async: acknowledged this long before a kill must survive it


def problems(loop, result, grace=None, qos2_duplicates_allowed=False):
    """What the loop did wrong, as readable lines (empty: nothing)."""
    found = []
    if result["acked"] < 100:
        found.append(f"only {result['acked']} messages acknowledged: the loop did not run")
    if result["lost"]:
        found.append("acknowledged messages lost: " + ", ".join(
            f"{sub} {len(keys)}" for sub, keys in result["lost"].items()))
    if result["dup_qos2"] and not qos2_duplicates_allowed:
        found.append("QoS 2 messages delivered twice: " + ", ".join(
            f"{sub} {len(keys)}" for sub, keys in result["dup_qos2"].items()))
    if result["phantom"]:
        found.append(f"messages nobody published: {result['phantom']}")
    if loop.queue_drops():
        found.append(f"the broker dropped messages at full queues (the harness's limits are "
                     f"too small, not a durability loss): {loop.queue_drops()[:3]}")
    if result["refused"]:
        found.append(f"publishes refused: {result['refused']}")
    absent = {}
    for name, kill in loop.sessions_lost(grace or 0.0):
        absent.setdefault(name, []).append(kill)
    if absent:
        found.append("reconnected without their session: " + ", ".join(
            f"{name} after kills {kills}" for name, kills in absent.items()))
    return found


@pytest.mark.parametrize("shards", [1, 2])
def test_sync_crash_loop_loses_nothing_acknowledged(start_broker, tmp_path, shards):
    loop = CrashLoop(start_broker, tmp_path / "data", "sync", shards=shards,
                     label=f"sync-shards-{shards}")
    loop.run()
    result = loop.report()
    found = problems(loop, result)
    assert not found, "\n".join(found) + "\n" + loop.describe(result)


def test_async_crash_loop_loses_only_the_last_moments(start_broker, tmp_path):
    loop = CrashLoop(start_broker, tmp_path / "data", "async", shards=2,
                     extra=["--durability-flush-ms=50"], label="async-flush-50")
    loop.run()
    loop.report()  # for the record: losses counting every acknowledgement
    result = loop.report(grace=ASYNC_GRACE)
    found = problems(loop, result, grace=ASYNC_GRACE, qos2_duplicates_allowed=True)
    assert not found, "\n".join(found) + "\n" + loop.describe(result)


def test_the_crash_loop_sees_losses_without_durability(start_broker, tmp_path):
    # --durability=none keeps no session: every reconnect finds none, and the
    # subscribers (which subscribe only once) miss what follows. If this
    # passes while the durable loops fail, the harness is not the problem.
    loop = CrashLoop(start_broker, tmp_path / "data", "none", kills=2, label="none")
    loop.run()
    result = loop.report()
    assert result["acked"] >= 100, loop.describe(result)
    assert result["lost"], "no loss detected without durability:\n" + loop.describe(result)
    assert loop.sessions_lost(), "sessions survived --durability=none"
    assert not result["phantom"], loop.describe(result)


# --- restoring a session: raw clients, so the order on the wire is visible ------------------
def durable(data):
    return [f"--data-dir={data}", "--durability=sync"]


RECOVERED = re.compile(r"(\d+) sessions \((\d+) messages queued or in flight\) recovered")


def recovered(broker):
    """(sessions, messages) from the broker's start-up line "store: ...
    N sessions (M messages queued or in flight) recovered ..."."""
    line = wait_until(lambda: next((m for m in map(RECOVERED.search, broker.log_lines) if m),
                                   None), timeout=5)
    assert line, f"no recovery line in the log:\n{broker.log()}"
    return int(line.group(1)), int(line.group(2))


def connect(port, client_id, version, clean=False, expiry=SESSION_EXPIRY):
    """A raw client after CONNACK 0; returns (client, session present)."""
    client = raw.Client(port)
    if version == 5:
        body = client.connect(client_id, version=5, clean=clean,
                              properties=w5.props((w5.SESSION_EXPIRY, expiry)))
    else:
        body = client.connect(client_id, version=version, clean=clean)
    assert body[1] == 0, f"{client_id}: CONNACK {body!r}"
    return client, bool(body[0] & 1)


def subscribe(client, version, *filters):
    client.send(raw.subscribe(1, *filters, version=version))
    suback = client.expect(raw.SUBACK)
    codes = list(w5.parse_suback(suback)[1]) if version == 5 else list(suback.body[2:])
    assert codes == [qos for _, qos in filters], suback


def leave(client, version):
    client.send(raw.disconnect(version))
    client.close()


def unexpected(client, version, timeout=0.4):
    """PUBLISH packets arriving within `timeout` (PUBREL is answered)."""
    extra = []
    while True:
        try:
            pkt = client.read(timeout)
        except TimeoutError:  # socket.timeout too; a closed connection raises on
            return extra
        if pkt.type == raw.PUBREL:
            client.send(raw.ack(raw.PUBCOMP, pkt.packet_id()))
        elif pkt.type == raw.PUBLISH:
            extra.append(pkt.publish_fields(version))


def everything(client, version, quiet=1.0, limit=10.0):
    """Every PUBLISH until nothing arrives for `quiet` seconds (QoS 1/2
    acknowledged, PUBREL completed)."""
    got = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            pkt = client.read(quiet)
        except TimeoutError:
            break
        if pkt.type == raw.PUBREL:
            client.send(raw.ack(raw.PUBCOMP, pkt.packet_id()))
        elif pkt.type == raw.PUBLISH:
            m = pkt.publish_fields(version)
            got.append(m)
            if m["qos"]:
                client.send(raw.ack(raw.PUBACK if m["qos"] == 1 else raw.PUBREC, m["packet_id"]))
    return got


def fields(got):
    return [(m["topic"], m["payload"], m["qos"]) for m in got]


def per_topic_and_qos(items):
    """{(topic, qos): payloads in order}: the order MQTT requires [MQTT-4.6.0-6]."""
    out = {}
    for topic, payload, qos in items:
        out.setdefault((topic, qos), []).append(payload)
    return out


def assert_in_order(got, expected, what):
    """All of `expected` arrived once: first in the order the spec requires
    (per topic and QoS), then in the order they were published, which is
    what the broker does without --data-dir and with async."""
    got = fields(got)
    assert sorted(got) == sorted(expected), f"{what}: got {got}, expected {expected}"
    assert per_topic_and_qos(got) == per_topic_and_qos(expected), \
        f"{what}: out of order within a topic and QoS: got {got}"
    assert got == expected, f"{what}: not in publish order (QoS 1 and 2 interleaved " \
        f"differently): got {got}, published {expected}"


def stop(broker, how):
    if how == "sigterm":
        assert broker.stop() == 0, broker.log()[-3000:]
    else:
        broker.process.send_signal(signal.SIGKILL)
        broker.process.wait(10)


@pytest.mark.parametrize("how", ["sigterm", "kill"])
@pytest.mark.parametrize("version", [4, 5])
def test_an_offline_queue_survives_a_restart_in_order(start_broker, tmp_path, version, how):
    data = tmp_path / "data"
    broker = start_on_port(start_broker, durable(data), shards=2)
    port = broker.port
    cid = f"restore-v{version}-{how}"
    sub, present = connect(port, cid, version)
    assert not present
    subscribe(sub, version, ("rs/a", 2), ("rs/b/#", 1))
    leave(sub, version)

    pub = raw.connected(port, "restore-pub")
    expected = []
    for n in range(12):
        topic, qos = ("rs/a", 1 + n % 2) if n % 3 else ("rs/b/x", 2)
        payload = f"offline {n} q{qos}".encode()
        raw.publish_and_confirm(pub, topic, payload, qos=qos, packet_id=n + 1)
        expected.append((topic, payload, 1 if topic == "rs/b/x" else qos))
    pub.close()

    stop(broker, how)
    broker = start_on_port(start_broker, durable(data), shards=2, port=port)
    assert recovered(broker) == (1, len(expected))
    sub, present = connect(port, cid, version)
    assert present, f"{cid}: session not present after {how}:\n{broker.log()}"
    got = raw.read_publishes(sub, len(expected), version=version)
    assert unexpected(sub, version) == []
    assert_in_order(got, expected, f"{cid} after {how}")

    # The subscriptions came back with the session: no new SUBSCRIBE.
    pub = raw.connected(port, "restore-pub")
    raw.publish_and_confirm(pub, "rs/a", "live a", qos=2, packet_id=1)
    raw.publish_and_confirm(pub, "rs/b/y", "live b", qos=2, packet_id=2)
    got = raw.read_publishes(sub, 2, version=version)
    assert fields(got) == [("rs/a", b"live a", 2), ("rs/b/y", b"live b", 1)]
    assert unexpected(sub, version) == []
    leave(sub, version)
    pub.close()


@pytest.mark.parametrize("version", [4, 5])
def test_a_suback_means_stored_even_after_kill_9(start_broker, tmp_path, version):
    data = tmp_path / "data"
    broker = start_on_port(start_broker, durable(data), shards=2)
    port = broker.port
    cid = f"suback-v{version}"
    sub, _ = connect(port, cid, version)
    subscribe(sub, version, ("sa/t", 2))
    stop(broker, "kill")  # at once after SUBACK, the connection still open
    sub.close()
    broker = start_on_port(start_broker, durable(data), shards=2, port=port)
    sub, present = connect(port, cid, version)
    assert present, f"{cid}: no session after a kill -9 right after SUBACK:\n{broker.log()}"
    pub = raw.connected(port, "suback-pub")
    raw.publish_and_confirm(pub, "sa/t", "after the crash", qos=2)
    assert fields(raw.read_publishes(sub, 1, version=version)) == [("sa/t", b"after the crash", 2)]
    assert unexpected(sub, version) == []
    leave(sub, version)
    pub.close()


def ack_reason(pkt):
    """An acknowledgement's reason code (0 when absent, and always in 3.1.1)."""
    return pkt.body[2] if len(pkt.body) > 2 else 0


@pytest.mark.parametrize("version", [4, 5])
def test_in_flight_messages_resume_after_kill_9(start_broker, tmp_path, version):
    # [MQTT-4.4.0-1]: on reconnect the broker resends unacknowledged PUBLISH
    # packets with their original packet ids (DUP set) and PUBREL for QoS 2
    # messages whose PUBREC it received; never the PUBLISH of one it released.
    data = tmp_path / "data"
    broker = start_on_port(start_broker, durable(data), shards=2)
    port = broker.port
    cid = f"inflight-v{version}"
    sub, _ = connect(port, cid, version)
    subscribe(sub, version, ("if/#", 2))
    pub = raw.connected(port, "inflight-pub")
    for n, qos in enumerate((1, 2, 2, 1)):
        raw.publish_and_confirm(pub, f"if/{n}", f"m{n}", qos=qos, packet_id=n + 1)
    pub.close()
    first = raw.read_publishes(sub, 4, version=version, ack_them=False)
    assert [(m["payload"], m["qos"]) for m in first] == [(b"m0", 1), (b"m1", 2), (b"m2", 2),
                                                         (b"m3", 1)]
    ids = {m["payload"]: m["packet_id"] for m in first}
    sub.send(raw.ack(raw.PUBACK, ids[b"m3"]))  # m3 done
    sub.send(raw.ack(raw.PUBREC, ids[b"m2"]))  # m2 received; PUBREL comes, no PUBCOMP
    pubrel = sub.expect(raw.PUBREL)
    assert pubrel.packet_id() == ids[b"m2"]
    # m0 (QoS 1) and m1 (QoS 2) are left unanswered.
    stop(broker, "kill")
    sub.close()
    broker = start_on_port(start_broker, durable(data), shards=2, port=port)

    sub, present = connect(port, cid, version)
    assert present, f"{cid}: no session after kill -9:\n{broker.log()}"
    resent = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            pkt = sub.read(1.0)
        except TimeoutError:
            break
        if pkt.type == raw.PUBLISH:
            m = pkt.publish_fields(version)
            resent.append(("PUBLISH", m["packet_id"], m["payload"], m["qos"], m["dup"]))
        else:
            resent.append((pkt.type, pkt.packet_id()))
    # m3's PUBACK went just before the kill: if the broker had not stored it
    # yet, m3 comes again (QoS 1 allows a duplicate).
    m3_again = ("PUBLISH", ids[b"m3"], b"m3", 1, True)
    expected = [("PUBLISH", ids[b"m0"], b"m0", 1, True), ("PUBLISH", ids[b"m1"], b"m1", 2, True),
                (raw.PUBREL, ids[b"m2"])]
    # PUBLISH resends in their first order; where the PUBREL falls among them is free.
    assert sorted((r for r in resent if r != m3_again), key=str) == sorted(expected, key=str), \
        f"resent {resent}, expected {expected}:\n{broker.log()}"
    assert [r for r in resent if r[0] == "PUBLISH"] in (expected[:2], [*expected[:2], m3_again])
    if m3_again in resent:
        sub.send(raw.ack(raw.PUBACK, ids[b"m3"]))
    sub.send(raw.ack(raw.PUBACK, ids[b"m0"]))
    sub.send(raw.ack(raw.PUBREC, ids[b"m1"]))
    assert sub.expect(raw.PUBREL).packet_id() == ids[b"m1"]
    sub.send(raw.ack(raw.PUBCOMP, ids[b"m1"]))
    sub.send(raw.ack(raw.PUBCOMP, ids[b"m2"]))
    assert unexpected(sub, version) == []
    leave(sub, version)


@pytest.mark.parametrize("version", [4, 5])
def test_an_inbound_qos2_packet_id_survives_kill_9(start_broker, tmp_path, version):
    # [MQTT-4.3.3-10]: until PUBREL, a PUBLISH with the same packet id is
    # acknowledged again but not delivered again, a crash in between or not.
    data = tmp_path / "data"
    broker = start_on_port(start_broker, durable(data), shards=2)
    port = broker.port
    sub, _ = connect(port, "inbound-sub", 4)
    subscribe(sub, 4, ("ib/t", 2))
    leave(sub, 4)
    cid = f"inbound-pub-v{version}"
    pub, _ = connect(port, cid, version)
    pub.send(raw.publish("ib/t", "exactly once", qos=2, packet_id=9, version=version))
    pubrec = pub.expect(raw.PUBREC)
    assert pubrec.packet_id() == 9 and ack_reason(pubrec) < 0x80, pubrec
    stop(broker, "kill")
    pub.close()
    broker = start_on_port(start_broker, durable(data), shards=2, port=port)

    pub, present = connect(port, cid, version)
    assert present, f"{cid}: no session after kill -9:\n{broker.log()}"
    pub.send(raw.publish("ib/t", "exactly once", qos=2, packet_id=9, dup=True, version=version))
    pubrec = pub.expect(raw.PUBREC)
    assert pubrec.packet_id() == 9 and ack_reason(pubrec) < 0x80, pubrec
    pub.send(raw.ack(raw.PUBREL, 9))
    pubcomp = pub.expect(raw.PUBCOMP)
    # 0x92 (packet identifier not found) would mean the id was forgotten.
    assert pubcomp.packet_id() == 9 and ack_reason(pubcomp) == 0, pubcomp
    pub.close()
    sub, present = connect(port, "inbound-sub", 4)
    assert present
    assert fields(raw.read_publishes(sub, 1)) == [("ib/t", b"exactly once", 2)]
    assert unexpected(sub, 4) == [], "the resent PUBLISH was delivered a second time"
    leave(sub, 4)


def test_qos2_publishes_cut_by_a_kill_reach_every_shard_exactly_once(start_broker, tmp_path):
    # The crash loop's shards=2 failures, in small: a publisher on one shard
    # sends QoS 2 PUBLISHes back to back, the broker is killed before (or
    # while) it answers, and the publisher then does what [MQTT-4.4.0-1]
    # says: PUBREL for the ids it got PUBREC for, the PUBLISH again (DUP)
    # for the others. Two persistent subscribers, one on each shard, must
    # each get every message exactly once: the publisher's shard logs the
    # inbound ids, the other shard its subscriber's copies.
    shards = 2
    pub_id = "cut-pub"
    subs = [next(c for c in (f"cut-sub{n}" for n in range(100))
                 if raw.home_shard(c, shards) == shard) for shard in range(shards)]
    found = []
    # The window is narrow: about one round in four hits it.
    for round_, delay in enumerate((0.0, 0.0002, 0.0005, 0.0) * 2):
        data = tmp_path / f"data{round_}"
        broker = start_on_port(start_broker, durable(data), shards=shards)
        port = broker.port
        for cid in subs:
            client, _ = connect(port, cid, 4)
            subscribe(client, 4, ("cut/t", 2))
            leave(client, 4)
        pub, _ = connect(port, pub_id, 4)
        subscribe(pub, 4, ("cut/none", 1))  # SUBACK: its session is stored by now
        count = 40
        for n in range(1, count + 1):
            pub.send(raw.publish("cut/t", f"m{n}", qos=2, packet_id=n))
        time.sleep(delay)
        stop(broker, "kill")
        pubrecs = set()
        try:
            while True:  # what got through before the kill
                pkt = pub.read(0.3)
                if pkt.type == raw.PUBREC:
                    pubrecs.add(pkt.packet_id())
        except (TimeoutError, ConnectionError):
            pass
        pub.close()

        broker = start_on_port(start_broker, durable(data), shards=shards, port=port)
        pub, present = connect(port, pub_id, 4)
        assert present
        for n in range(1, count + 1):
            if n in pubrecs:
                pub.send(raw.ack(raw.PUBREL, n))
            else:
                pub.send(raw.publish("cut/t", f"m{n}", qos=2, packet_id=n, dup=True))
        completed = set()
        while len(completed) < count:
            pkt = pub.read(5.0)
            if pkt.type == raw.PUBREC:
                pub.send(raw.ack(raw.PUBREL, pkt.packet_id()))
            elif pkt.type == raw.PUBCOMP:
                completed.add(pkt.packet_id())
        pub.close()
        for cid in subs:
            client, present = connect(port, cid, 4)
            assert present
            got = [int(m["payload"][1:]) for m in everything(client, 4, quiet=0.5)]
            leave(client, 4)
            twice = ranges(sorted({n for n in got if got.count(n) > 1}), 10)
            missing = ranges(sorted(set(range(1, count + 1)) - set(got)), 10)
            if twice or missing:
                found.append(
                    f"round {round_} (kill {delay * 1000:.1f} ms after the PUBLISHes, "
                    f"{len(pubrecs)} PUBRECs before it): {cid} on shard "
                    f"{raw.home_shard(cid, shards)} (publisher on shard "
                    f"{raw.home_shard(pub_id, shards)}) got twice: m{twice or '-'}; "
                    f"never: m{missing or '-'}")
        assert broker.stop() == 0
    assert not found, "\n".join(found)


@pytest.mark.parametrize("how", ["sigterm", "kill"])
def test_session_expiry_runs_while_the_broker_is_down(start_broker, tmp_path, how):
    data = tmp_path / "data"
    broker = start_on_port(start_broker, durable(data), shards=2)
    port = broker.port
    for cid, expiry in (("expiry-short", 2), ("expiry-long", 60)):
        client, _ = connect(port, cid, 5, clean=True, expiry=expiry)
        subscribe(client, 5, ("ex/t", 1))
        leave(client, 5)
    pub = raw.connected(port, "expiry-pub")
    raw.publish_and_confirm(pub, "ex/t", "queued", qos=1)
    pub.close()

    stop(broker, how)
    # Expiry of expiry-short: 2 s after its DISCONNECT, passing while no broker runs.
    time.sleep(3.0)
    broker = start_on_port(start_broker, durable(data), shards=2, port=port)

    long, present = connect(port, "expiry-long", 5, expiry=60)
    assert present, f"expiry-long (60 s) lost its session:\n{broker.log()}"
    assert fields(raw.read_publishes(long, 1, version=5)) == [("ex/t", b"queued", 1)]
    short, present = connect(port, "expiry-short", 5, expiry=2)
    assert not present, "expiry-short's session outlived its 2 s expiry while the broker was down"
    assert unexpected(short, 5) == []
    leave(long, 5)
    leave(short, 5)


def test_sessions_and_queues_follow_a_changed_shard_count(start_broker, tmp_path):
    data = tmp_path / "data"
    ids = raw.spread_ids("redist", 6, 3)
    versions = {cid: (4 if n % 2 else 5) for n, cid in enumerate(ids)}
    broker = start_on_port(start_broker, durable(data), shards=2)
    port = broker.port
    for cid in ids:
        client, present = connect(port, cid, versions[cid])
        assert not present
        subscribe(client, versions[cid], (f"rd/{cid}", 1), ("rd/all", 2))
        leave(client, versions[cid])

    def queue_batch(batch):
        """Publishes a batch while everyone is offline; returns what each must get."""
        owed = {cid: [] for cid in ids}
        pub = raw.connected(port, "redist-pub")
        packet_id = 0
        for cid in ids:
            for n in range(3):
                qos = 1 + (n % 2)
                payload = f"{batch} {cid} {n}".encode()
                packet_id += 1
                raw.publish_and_confirm(pub, f"rd/{cid}", payload, qos=qos, packet_id=packet_id)
                owed[cid].append((f"rd/{cid}", payload, 1))
            if cid == ids[2]:
                packet_id += 1
                payload = f"{batch} all".encode()
                raw.publish_and_confirm(pub, "rd/all", payload, qos=2, packet_id=packet_id)
                for other in ids:
                    owed[other].append(("rd/all", payload, 2))
        pub.close()
        return owed

    def check(owed, stay=False):
        clients = {}
        for cid in ids:
            version = versions[cid]
            client, present = connect(port, cid, version)
            assert present, f"{cid} (home shard {raw.home_shard(cid, broker.shards)} of " \
                f"{broker.shards}) lost its session:\n{broker.log()}"
            got = raw.read_publishes(client, len(owed[cid]), version=version)
            assert unexpected(client, version, timeout=0.2) == [], cid
            # All there, each topic in order (across topics the spec sets no order).
            assert sorted(fields(got)) == sorted(owed[cid]), cid
            assert per_topic_and_qos(fields(got)) == per_topic_and_qos(owed[cid]), cid
            if stay:
                clients[cid] = client
            else:
                leave(client, version)
        return clients

    owed = queue_batch("two")
    stop(broker, "kill")
    broker = start_on_port(start_broker, durable(data), shards=3, port=port)
    assert recovered(broker) == (len(ids), sum(map(len, owed.values())))
    check(owed)

    owed = queue_batch("three")
    stop(broker, "sigterm")
    broker = start_on_port(start_broker, durable(data), shards=1, port=port)
    assert recovered(broker) == (len(ids), sum(map(len, owed.values())))
    clients = check(owed, stay=True)

    # The subscriptions moved with the sessions: live messages arrive.
    pub = raw.connected(port, "redist-pub")
    raw.publish_and_confirm(pub, "rd/all", "one live", qos=2, packet_id=1)
    for cid, client in clients.items():
        got = raw.read_publishes(client, 1, version=versions[cid])
        assert fields(got) == [("rd/all", b"one live", 2)], cid
        leave(client, versions[cid])
    pub.close()
