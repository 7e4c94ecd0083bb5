"""A crash loop for durable sessions (issue 9): real paho clients with
persistent sessions against the real daemon, which is killed with SIGKILL at
random moments and restarted on the same port and data directory.

Publishers send numbered messages (payload "<publisher>:<seq>") as fast as
their in-flight window allows and note when each was first sent and when the
broker acknowledged it (on_publish: after PUBACK for QoS 1, after PUBCOMP for
QoS 2; the PUBACK/PUBREC reason code is kept for MQTT 5). Subscribers count
every delivery by (publisher, seq) and QoS. Each paho Client object lives for
the whole loop; once the broker is back the harness calls reconnect() on it,
once, so a publisher's in-memory session resends what was not acknowledged,
with DUP, and a QoS 2 exchange past PUBREC continues with PUBREL. (Not paho's
own retry loop: paho 1.6 resets its messages at every reconnect attempt, and
a second reset after a refused attempt turns a QoS 2 message waiting for
PUBCOMP into a fresh PUBLISH without DUP, which a broker rightly delivers
again. That client bug showed up here as duplicates.) Subscribers subscribe once: a subscription the broker
forgot stays forgotten, so the loss shows.

A message is owed to a subscriber if it was acknowledged and first sent after
the subscriber's SUBACK arrived (the broker sends SUBACK only once every shard
knows the subscription, src/broker/handle_subscribe.cc, so such a PUBLISH is
routed to it; one sent before the SUBACK may legitimately have been routed
before the subscription existed). With `grace` (async mode) a message is owed
only if it was acknowledged at least `grace` seconds before the kill of the
broker that acknowledged it, and first sent at least `grace` seconds before
the next kill (async acknowledges at once, and paho tells of a QoS 2
message only at PUBCOMP, after the PUBREC that passed it to the broker).

The kill schedule comes from a seeded random.Random; the seed is printed and
SHARDMQ_CRASH_SEED=N repeats the schedule (thread timing still varies).
"""
import collections
import os
import random
import signal
import struct
import threading
import time

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import mqtt_raw
from conftest import wait_until

TOPIC_PREFIX = "crash"
SESSION_EXPIRY = 3600  # MQTT 5 clients: long enough to outlive the test
RECONNECT_TIMEOUT = 15.0
ACK_TIMEOUT = 20.0  # publishers' outstanding messages acknowledged after the last restart
DRAIN_TIMEOUT = 30.0  # owed messages arriving at subscribers, at most
DRAIN_IDLE = 3.0  # ... or stop waiting when nothing arrived for this long
BROKER_LIMITS = (
    # The Python subscribers fall behind the publishers. An online
    # subscriber's queue pauses its publishers at half this (so the backlog,
    # and the drain at the end, stay bounded) and holds 8 times it; an
    # offline one (between a restart and its reconnect) holds this many. No
    # message may be dropped at a full queue, or a loss would not be the
    # store's: queue_drops() looks for the broker's warning.
    "--max-queued-messages=20000",
    "--max-queued-bytes=1000000000",
)
QUEUE_FULL = "its queue is full"


def crash_seed():
    """SHARDMQ_CRASH_SEED, or a fresh random seed."""
    value = os.environ.get("SHARDMQ_CRASH_SEED")
    return int(value) if value else random.SystemRandom().randrange(1 << 32)


def start_on_port(start_broker, args, shards, port=0):
    """start_broker(*args) listening on 127.0.0.1:port (0: a free one). A
    restart passes the previous port, and is retried for up to 2 s: after a
    kill -9 the dead broker's listening sockets stay open for some 10-25 ms
    (its io_uring instance is torn down asynchronously), and a broker that
    starts meanwhile stops with "another process listens there". The
    refused attempts are counted in the broker's `refused_starts`."""
    last = None
    for attempt in range(20):
        try:
            broker = start_broker(*args, shards=shards, listen=f"127.0.0.1:{port}")
            broker.refused_starts = attempt
            return broker
        except RuntimeError as error:
            if port == 0:
                raise
            last = error
            time.sleep(0.1)
    raise AssertionError(f"could not restart the broker on port {port}: {last}")


class _Client(paho.Client):
    """paho's Client, also keeping the reason code of each MQTT 5 PUBACK,
    PUBREC and PUBCOMP by packet id (paho 1.6's on_publish does not pass it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ack_reasons = {}  # mid -> {"PUBACK"|"PUBREC"|"PUBCOMP": reason code}

    def _note_reason(self, kind):
        body = self._in_packet["packet"]
        if self._protocol == paho.MQTTv5 and len(body) >= 2:
            (mid,) = struct.unpack("!H", body[:2])
            self.ack_reasons.setdefault(mid, {})[kind] = body[2] if len(body) > 2 else 0

    def _handle_pubackcomp(self, cmd):
        self._note_reason(cmd)
        return super()._handle_pubackcomp(cmd)

    def _handle_pubrec(self):
        self._note_reason("PUBREC")
        return super()._handle_pubrec()


class Participant:
    """One persistent-session paho client: connects, reconnects by itself,
    and records every CONNACK as (time, session present, return code)."""

    def __init__(self, name, version):
        self.name = name
        self.version = version
        # reconnect_on_failure=False: the loop thread ends when the broker
        # goes, and reconnect() below brings the client back.
        if version == 5:
            self.client = _Client(client_id=name, protocol=paho.MQTTv5,
                                  reconnect_on_failure=False)
        else:
            self.client = _Client(client_id=name, protocol=paho.MQTTv311, clean_session=False,
                                  reconnect_on_failure=False)
        self.client.on_connect = self._on_connect
        self.connacks = []
        self.generation = 0  # which broker (0 = the first) the connection is to
        # SHARDMQ_CRASH_TRACE=1: paho's packet log, (time, line), to see what
        # went over the wire for a message the judgement names.
        self.trace = []
        if os.environ.get("SHARDMQ_CRASH_TRACE"):
            self.client.on_log = lambda c, u, level, line: self.trace.append(
                (time.monotonic(), line))

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        code = rc.value if hasattr(rc, "value") else rc
        self.connacks.append((time.monotonic(), bool(flags.get("session present")), code))

    def connect(self, port):
        if self.version == 5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY
            self.client.connect("127.0.0.1", port, keepalive=30, clean_start=False,
                                properties=props)
        else:
            self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def reconnect(self, generation):
        """One reconnect() of the same Client (its session state kept) to
        broker number `generation`; the old loop thread has ended with the
        connection. A refused attempt fails the test rather than retrying
        (see the module comment for why a retry would not be harmless)."""
        self.client.loop_stop()  # what the old connection delivered is handled by now
        self.generation = generation
        try:
            self.client.reconnect()
        except OSError as error:
            raise AssertionError(f"{self.name}: reconnect refused ({error}); not retried, "
                                 f"paho 1.6 would resend released QoS 2 messages") from error
        self.client.loop_start()

    def connected_since(self, when):
        return any(t >= when and code == 0 for t, _, code in self.connacks)

    def close(self):
        self.client.disconnect()
        stopper = threading.Thread(target=self.client.loop_stop, daemon=True)
        stopper.start()
        stopper.join(5)


class Publisher(Participant):
    """Publishes "<name>:<seq>" on crash/<name> at `qos`, at most `window`
    messages unacknowledged, until stopped."""

    def __init__(self, name, version, qos, window):
        super().__init__(name, version)
        self.qos = qos
        self.topic = f"{TOPIC_PREFIX}/{name}"
        self.client.max_inflight_messages_set(window)
        self.client.on_publish = self._on_publish
        self.window = threading.Semaphore(window)
        self.lock = threading.Lock()
        self.first_sent = {}  # seq -> time of the publish() call
        self.acked = {}  # seq -> time on_publish ran
        self.ack_generation = {}  # seq -> the broker that acknowledged it (0 = the first)
        self.refused = {}  # seq -> {packet: reason} for a PUBACK/PUBREC reason >= 0x80
        self.pubcomp_reasons = collections.Counter()  # MQTT 5 PUBCOMP reason codes seen
        self.by_mid = {}  # mid -> seq, messages not yet acknowledged
        self.early = {}  # mid -> (time, reasons): on_publish ran before publish() returned
        self.mid_log = []  # (mid, seq) as publish() returned them
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"pub-{name}", daemon=True)

    def _on_publish(self, client, userdata, mid):
        now = time.monotonic()
        reasons = self.client.ack_reasons.pop(mid, {})
        with self.lock:
            seq = self.by_mid.pop(mid, None)
            if seq is None:
                self.early[mid] = (now, reasons)
            else:
                self._settle(seq, now, reasons)

    def _settle(self, seq, now, reasons):
        failed = {k: r for k, r in reasons.items() if k != "PUBCOMP" and r >= 0x80}
        if failed:
            self.refused[seq] = failed
        else:
            self.acked[seq] = now
            self.ack_generation[seq] = self.generation
        if "PUBCOMP" in reasons:
            self.pubcomp_reasons[reasons["PUBCOMP"]] += 1
        self.window.release()

    def _run(self):
        seq = 0
        while not self.stopping.is_set():
            if not self.window.acquire(timeout=0.1):
                continue
            seq += 1
            with self.lock:
                self.first_sent[seq] = time.monotonic()
            # While the broker is down publish() returns MQTT_ERR_NO_CONN but
            # keeps the message; it is sent after the next CONNACK.
            info = self.client.publish(self.topic, f"{self.name}:{seq}".encode(), qos=self.qos)
            with self.lock:
                self.mid_log.append((info.mid, seq))
                early = self.early.pop(info.mid, None)
                if early is not None:
                    self._settle(seq, *early)
                else:
                    self.by_mid[info.mid] = seq

    def outstanding(self):
        with self.lock:
            return len(self.first_sent) - len(self.acked) - len(self.refused)


class Subscriber(Participant):
    """Subscribes once to `topic_filter` at `qos` and counts deliveries."""

    def __init__(self, name, version, qos, topic_filter):
        super().__init__(name, version)
        self.qos = qos
        self.topic_filter = topic_filter
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.deliveries = collections.defaultdict(list)  # (publisher, seq) -> [qos, ...]
        self.details = collections.defaultdict(list)  # (publisher, seq) -> [(time, mid, dup)]
        self.suback = None  # (time, granted QoS or reason code)
        self.last_message = time.monotonic()
        self.lock = threading.Lock()

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        first = granted[0]
        self.suback = (time.monotonic(), first.value if hasattr(first, "value") else first)

    def _on_message(self, client, userdata, message):
        publisher, _, seq = message.payload.decode().partition(":")
        with self.lock:
            now = time.monotonic()
            self.deliveries[(publisher, int(seq))].append(message.qos)
            self.details[(publisher, int(seq))].append((now, message.mid, message.dup))
            self.last_message = now

    def subscribe(self, timeout=10.0):
        self.client.subscribe(self.topic_filter, self.qos)
        assert wait_until(lambda: self.suback is not None, timeout), \
            f"{self.name}: no SUBACK for {self.topic_filter} within {timeout} s"
        assert self.suback[1] == self.qos, f"{self.name}: SUBACK {self.suback}"

    def received(self, key):
        with self.lock:
            return bool(self.deliveries.get(key))


# The clients of one loop: both protocol versions, both QoS on each side.
SUBSCRIBERS = (  # name, version, qos, filter
    ("sub-v311-q1", 4, 1, f"{TOPIC_PREFIX}/#"),
    ("sub-v311-q2", 4, 2, f"{TOPIC_PREFIX}/#"),
    ("sub-v5-q1", 5, 1, f"{TOPIC_PREFIX}/+"),
    ("sub-v5-q2", 5, 2, f"{TOPIC_PREFIX}/+"),
)
LATE_SUBSCRIBER = ("sub-late-v5-q2", 5, 2, f"{TOPIC_PREFIX}/#")  # subscribes after the first kill
PUBLISHERS = (  # name, version, qos
    ("pub-v311-q1", 4, 1),
    ("pub-v311-q2", 4, 2),
    ("pub-v5-q1", 5, 1),
    ("pub-v5-q2", 5, 2),
)


def ranges(numbers, limit):
    """"3-7, 9, 12-13" for sorted numbers, at most `limit` stretches."""
    out = []
    for n in numbers:
        if out and n == out[-1][1] + 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in out[:limit])
    return text + (f", ... ({len(out) - limit} more stretches)" if len(out) > limit else "")


class CrashLoop:
    """Runs the loop against brokers started with `start_broker` (the conftest
    fixture) and keeps everything needed to judge it afterwards.

    start_broker: the fixture; data_dir: the --data-dir; durability: none,
    async or sync; shards: --shards; kills: how many SIGKILLs; extra: more
    broker flags; window: each publisher's in-flight window."""

    def __init__(self, start_broker, data_dir, durability, shards=1, kills=None, seed=None,
                 label="", extra=(), window=16, load=(0.3, 1.5)):
        self.start_broker = start_broker
        self.seed = crash_seed() if seed is None else seed
        self.rng = random.Random(f"{self.seed}/{label}")
        self.kill_count = kills if kills is not None else self.rng.randint(6, 10)
        self.load = load
        self.shards = shards
        self.args = [f"--data-dir={data_dir}", f"--durability={durability}", *BROKER_LIMITS,
                     *extra]
        self.window = window
        self.label = label
        self.brokers = []
        self.kill_times = []
        self.restart_seconds = []
        self.subscribers = []
        self.publishers = []
        self.started = None
        self.load_done = None  # publishers stopped
        self.acks_done = None  # their last acknowledgements in (or ACK_TIMEOUT passed)
        self.drained = None  # owed messages in (or the drain gave up)
        self.finished = None

    # --- running -------------------------------------------------------------------------
    def _start(self, port=0):
        broker = start_on_port(self.start_broker, self.args, self.shards, port)
        self.brokers.append(broker)
        return broker

    def _everyone(self):
        return [*self.subscribers, *self.publishers]

    def _wait_reconnected(self, since):
        ok = wait_until(lambda: all(p.connected_since(since) for p in self._everyone()),
                        RECONNECT_TIMEOUT)
        assert ok, "clients not reconnected within %.0f s: %s\n%s" % (
            RECONNECT_TIMEOUT, [p.name for p in self._everyone() if not p.connected_since(since)],
            self.brokers[-1].log()[-3000:])

    def run(self):
        print(f"\n[{self.label}] crash loop: seed {self.seed} (SHARDMQ_CRASH_SEED={self.seed} "
              f"repeats the schedule), {self.kill_count} kills, shards {self.shards}, "
              f"args {' '.join(self.args)}")
        self.started = time.monotonic()
        broker = self._start()
        try:
            self._load(broker)
            self._drain()
        finally:
            self.finished = time.monotonic()
            # Every client goes, also after a failure: one left reconnecting
            # could find a later test's broker on the same port.
            for pub in self.publishers:
                pub.stopping.set()
            for participant in self._everyone():
                participant.close()

    def _join(self, participant, port):
        if isinstance(participant, Subscriber):
            self.subscribers.append(participant)
        else:
            self.publishers.append(participant)
        participant.connect(port)

    def _load(self, broker):
        port = broker.port
        try:
            for spec in SUBSCRIBERS:
                self._join(Subscriber(*spec), port)
            for sub in self.subscribers:
                assert wait_until(lambda: sub.connected_since(0), 10), sub.name
                sub.subscribe()
            for name, version, qos in PUBLISHERS:
                self._join(Publisher(name, version, qos, self.window), port)
            for pub in self.publishers:
                assert wait_until(lambda: pub.connected_since(0), 10), pub.name
                pub.thread.start()

            for kill in range(self.kill_count):
                time.sleep(self.rng.uniform(*self.load))
                self.kill_times.append(time.monotonic())
                broker.process.send_signal(signal.SIGKILL)
                broker.process.wait(10)
                restart = time.monotonic()
                broker = self._start(port)
                for participant in self._everyone():
                    participant.reconnect(kill + 1)
                self._wait_reconnected(restart)
                self.restart_seconds.append(time.monotonic() - restart)
                if kill == 0:
                    late = Subscriber(*LATE_SUBSCRIBER)
                    self._join(late, port)
                    assert wait_until(lambda: late.connected_since(0), 10), late.name
                    late.subscribe()
            time.sleep(self.rng.uniform(*self.load))
        finally:
            for pub in self.publishers:
                pub.stopping.set()
            for pub in self.publishers:
                if pub.thread.is_alive():
                    pub.thread.join(5)
            self.load_done = time.monotonic()

    def _drain(self):
        # Everything sent gets its acknowledgement from the last broker...
        wait_until(lambda: all(p.outstanding() == 0 for p in self.publishers), ACK_TIMEOUT,
                   interval=0.1)
        self.acks_done = time.monotonic()
        # ... and what is owed arrives, unless nothing has come for a while.
        waiting = [(sub, self.owed(sub)) for sub in self.subscribers]
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while waiting and time.monotonic() < deadline:
            waiting = [(sub, [k for k in keys if not sub.received(k)]) for sub, keys in waiting]
            waiting = [(sub, keys) for sub, keys in waiting if keys]
            if time.monotonic() - max(s.last_message for s in self.subscribers) > DRAIN_IDLE:
                break
            time.sleep(0.1)
        self.drained = time.monotonic()
        time.sleep(0.5)  # late duplicates, if any, arrive

    # --- judging -------------------------------------------------------------------------
    def _kill_of(self, generation):
        """When broker number `generation` was killed (None: it was not)."""
        return self.kill_times[generation] if generation < len(self.kill_times) else None

    def _next_kill(self, when):
        return next((k for k in self.kill_times if k >= when), None)

    def owed(self, sub, grace=None):
        """The (publisher, seq) keys `sub` must have received."""
        if sub.suback is None:
            return []
        keys = []
        for pub in self.publishers:
            with pub.lock:
                acked = dict(pub.acked)
                first_sent = dict(pub.first_sent)
                generation = dict(pub.ack_generation)
            for seq, ack_time in acked.items():
                if first_sent[seq] <= sub.suback[0]:
                    continue
                if grace is not None:
                    # The broker that sent the acknowledgement died at its kill
                    # (which may be noted a moment before the ack was read).
                    kill = self._kill_of(generation[seq])
                    if kill is not None and ack_time > kill - grace:
                        continue
                    # Async acknowledges at once: a QoS 2 message passes to
                    # the broker with PUBREC, about when it was first sent,
                    # though paho reports it only at PUBCOMP (perhaps from
                    # the next broker, after PUBREL). So the kill that counts
                    # is the first after it was sent.
                    kill = self._next_kill(first_sent[seq])
                    if kill is not None and first_sent[seq] > kill - grace:
                        continue
                keys.append((pub.name, seq))
        return keys

    def sessions_lost(self, grace=0.0):
        """(client, kill number) for each reconnect after a kill that found no
        session, for clients whose session began more than `grace` seconds
        before that kill (sync: grace 0, every session counts)."""
        out = []
        for participant in self._everyone():
            if not participant.connacks:
                continue
            created = participant.connacks[0][0]
            for n, kill in enumerate(self.kill_times):
                if created > kill - grace:
                    continue
                after = next((c for c in participant.connacks if c[0] >= kill), None)
                if after is not None and not after[1]:
                    out.append((participant.name, n + 1))
        return out

    def queue_drops(self):
        """The broker's warnings about messages dropped at a full queue."""
        return [line for broker in self.brokers for line in broker.log_lines
                if QUEUE_FULL in line]

    def _when(self, t):
        return f"{t - self.started:.3f}s"

    def _interval(self, t):
        """Which stretch between kills time t falls in: "before kill N" or "after the last"."""
        kill = self._next_kill(t)
        if kill is None:
            return "after the last kill"
        return f"{kill - t:.3f}s before kill {self.kill_times.index(kill) + 1}"

    def report(self, grace=None):
        """Judges the loop: a dict with lost, QoS 2 and QoS 1 duplicates,
        phantoms, refusals and session-present flags; also prints a summary."""
        lost, dup2, dup1, phantom = {}, {}, {}, {}
        sent = {p.name: p for p in self.publishers}
        for sub in self.subscribers:
            with sub.lock:
                deliveries = {k: list(v) for k, v in sub.deliveries.items()}
            missing = [k for k in self.owed(sub, grace) if not deliveries.get(k)]
            if missing:
                lost[sub.name] = sorted(missing)
            twice2 = {k: v for k, v in deliveries.items() if v.count(2) > 1}
            if twice2:
                dup2[sub.name] = twice2
            twice1 = {k: v for k, v in deliveries.items() if len(v) > 1 and k not in twice2}
            if twice1:
                dup1[sub.name] = twice1
            unknown = [k for k in deliveries
                       if k[0] not in sent or k[1] not in sent[k[0]].first_sent]
            if unknown:
                phantom[sub.name] = unknown
        reconnects = {p.name: [present for _, present, _ in p.connacks[1:]]
                      for p in self._everyone()}
        result = {
            "lost": lost, "dup_qos2": dup2, "dup_qos1": dup1, "phantom": phantom,
            "refused": {p.name: p.refused for p in self.publishers if p.refused},
            "session_present": reconnects,
            "acked": sum(len(p.acked) for p in self.publishers),
        }
        print(self.summary(result, grace))
        return result

    def describe(self, result, limit=6):
        """Details of lost and doubly delivered messages, for a failure
        message: per subscriber and publisher the seq ranges, and the timing
        of the first few."""
        sent = {p.name: p for p in self.publishers}
        lines = []

        def timing(pub, seq):
            ack = pub.acked.get(seq)
            first = pub.first_sent[seq]
            return (f"{pub.name}:{seq} (qos {pub.qos}) first sent {self._when(first)} "
                    f"({self._interval(first)}), acked "
                    + (f"{self._when(ack)} by broker {pub.ack_generation[seq]} "
                       f"({self._interval(ack)})" if ack else "never"))

        subs = {s.name: s for s in self.subscribers}

        for title, table in (("lost, acknowledged", result["lost"]),
                             ("delivered more than once at QoS 2", result["dup_qos2"])):
            for sub_name, keys in table.items():
                by_pub = collections.defaultdict(list)
                for pub_name, seq in keys:
                    by_pub[pub_name].append(seq)
                for pub_name, seqs in sorted(by_pub.items()):
                    seqs.sort()
                    lines.append(f"{sub_name}: {len(seqs)} of {pub_name}'s messages {title}: "
                                 f"seq {ranges(seqs, limit * 2)}")
                    lines += self._trace(sent[pub_name], seqs[0])
                    for seq in seqs[:limit]:
                        got = subs[sub_name].details.get((pub_name, seq), [])
                        extra = "; delivered " + ", ".join(
                            f"{self._when(t)} (packet id {mid}{', DUP' if dup else ''})"
                            for t, mid, dup in got) + "; copies everywhere: " + ", ".join(
                                f"{o.name} {len(o.details.get((pub_name, seq), []))}"
                                for o in self.subscribers) if got else \
                            "; other subscribers got it: " + (", ".join(
                                f"{o.name} at {self._when(o.details[(pub_name, seq)][0][0])}"
                                for o in self.subscribers if o.details.get((pub_name, seq)))
                                or "none")
                        lines.append(f"    {timing(sent[pub_name], seq)}{extra}")
        for sub_name, keys in result["phantom"].items():
            lines.append(f"{sub_name} got messages never published: {keys[:limit]}")
        for pub_name, refused in result["refused"].items():
            lines.append(f"{pub_name} refused: {dict(list(refused.items())[:limit])}")
        absent = collections.defaultdict(list)
        for name, kill in self.sessions_lost():
            absent[name].append(kill)
        for name, kills in absent.items():
            lines.append(f"{name} found no session after kills {kills}")
        lines.append("kills at " + ", ".join(self._when(k) for k in self.kill_times))
        lines.append(f"home shards (of {self.shards}): " + ", ".join(
            f"{p.name} {mqtt_raw.home_shard(p.name, self.shards)}" for p in self._everyone()))
        for n, broker in enumerate(self.brokers):
            lines.append(f"--- broker {n} (pid {broker.process.pid}), last lines:")
            lines += broker.log_lines[-12:]
        return "\n".join(lines)

    def _trace(self, pub, seq):
        """With SHARDMQ_CRASH_TRACE=1: paho's log lines for seq's packet id,
        and the CONNACKs within a second of its first send."""
        if not pub.trace:
            return []
        mids = {m for m, q in pub.mid_log if q == seq}
        out = [f"    paho's log of {pub.name} for seq {seq} (packet id {sorted(mids)}):"]
        for t, line in pub.trace:
            if any(f"m{m})" in line or f"Mid: {m})" in line for m in mids) or (
                    "CONNACK" in line and abs(t - pub.first_sent[seq]) < 1):
                out.append(f"      {self._when(t)} {line[:120]}")
        return out

    def summary(self, result, grace=None):
        subs = ", ".join(
            f"{s.name} {sum(len(v) for v in s.deliveries.values())} deliveries of "
            f"{len(s.deliveries)} messages, {len(result['lost'].get(s.name, []))} lost"
            for s in self.subscribers)
        pubs = ", ".join(
            f"{p.name} {len(p.acked)}/{len(p.first_sent)} acked"
            + (f" (PUBCOMP reasons {dict(p.pubcomp_reasons)})" if p.version == 5 and p.qos == 2
               else "")
            for p in self.publishers)
        absent = sum(1 for flags in result["session_present"].values() for f in flags if not f)
        refused = sum(b.refused_starts for b in self.brokers)
        return (f"[{self.label}] seed {self.seed}: {len(self.kill_times)} kills in "
                f"{self.finished - self.started:.1f} s (restart to all reconnected: "
                f"{', '.join(f'{s:.2f}' for s in self.restart_seconds)} s; "
                f"acks in {self.acks_done - self.load_done:.1f} s and drained "
                f"{self.drained - self.acks_done:.1f} s after the load stopped; {refused} "
                f"restarts refused while the killed broker's port was still open); "
                f"{result['acked']} messages acked; owed by "
                f"{'every acknowledgement' if grace is None else f'acks {grace} s before a kill'}"
                f"\n  publishers: {pubs}\n  subscribers: {subs}"
                f"\n  lost {sum(len(v) for v in result['lost'].values())}, QoS 2 duplicates "
                f"{sum(len(v) for v in result['dup_qos2'].values())}, QoS 1 duplicates "
                f"{sum(len(v) for v in result['dup_qos1'].values())}, phantoms "
                f"{sum(len(v) for v in result['phantom'].values())}, refused "
                f"{sum(len(v) for v in result['refused'].values())}; reconnects without a "
                f"session: {absent}")
