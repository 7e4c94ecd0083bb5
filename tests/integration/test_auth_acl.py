"""--password-file, --acl-file and --allow-anonymous on the real daemon, with a
password file written by mosquitto_passwd and driven by mosquitto_pub /
mosquitto_sub and paho (3.1.1 and 5.0); SIGHUP reloads both files while
connections stay up."""
import pathlib
import shutil
import signal
import subprocess
import threading
import time

import paho.mqtt.client as paho
import pytest

from conftest import paho_connack as connect_rc, wait_until

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
MOSQUITTO_PUB = shutil.which("mosquitto_pub")
MOSQUITTO_SUB = shutil.which("mosquitto_sub")
pytestmark = pytest.mark.skipif(not (MOSQUITTO_PASSWD and MOSQUITTO_PUB and MOSQUITTO_SUB),
                                reason="needs mosquitto-clients and mosquitto_passwd")

ACL = """\
# anonymous clients
topic read public/#
pattern readwrite devices/%c/#
pattern read users/%u/#

user alice
topic readwrite alice/#
topic deny alice/secret
topic read news/#
limit max_qos 1
limit shared_subscriptions deny

user bob
topic readwrite #
limit max_subscriptions 2
"""


@pytest.fixture
def auth_files(tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(passwd), "alice", "wonderland"], check=True)
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), "bob", "builder"], check=True)
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    return passwd, acl




class Session:
    """A connected paho client that records what it receives."""

    def __init__(self, port, client_id, user=None, password=None, protocol=paho.MQTTv311):
        self.messages = []
        self.granted = {}
        self.client = paho.Client(client_id=client_id, protocol=protocol)
        if user is not None:
            self.client.username_pw_set(user, password)
        connected = threading.Event()
        self.client.on_connect = lambda *a, **k: connected.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(5)

    def _on_subscribe(self, client, userdata, mid, granted, properties=None):
        self.granted[mid] = [g.value if hasattr(g, "value") else g for g in granted]

    def subscribe(self, topic, qos=0):
        _, mid = self.client.subscribe(topic, qos)
        assert wait_until(lambda: mid in self.granted, 5)
        return self.granted[mid]

    def publish(self, topic, payload, qos=1):
        info = self.client.publish(topic, payload, qos)
        info.wait_for_publish(5)
        return info

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def mosquitto_pub(port, *args):
    return subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), *args],
                          capture_output=True, text=True, timeout=20)


def test_startup_prints_what_is_in_force(start_broker, auth_files):
    passwd, acl = auth_files
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}")
    assert f"password file {passwd} (2 users)" in broker.log()
    assert "anonymous clients refused" in broker.log()
    open_broker = start_broker()
    assert "anonymous clients ALLOWED" in open_broker.log()


@pytest.mark.parametrize("protocol", [paho.MQTTv311, paho.MQTTv5])
def test_passwords_and_anonymous_default(start_broker, auth_files, protocol):
    passwd, acl = auth_files
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}")
    v5 = protocol == paho.MQTTv5
    assert connect_rc(broker.port, "alice", "wonderland", "a1", protocol) == 0
    assert connect_rc(broker.port, "alice", "wrong", "a2", protocol) == (0x86 if v5 else 4)
    assert connect_rc(broker.port, "nobody", "x", "a3", protocol) == (0x86 if v5 else 4)
    # With a password file, anonymous access is off unless asked for.
    assert connect_rc(broker.port, None, None, "anon", protocol) == (0x87 if v5 else 5)
    # mosquitto_pub says so too.
    bad = mosquitto_pub(broker.port, "-u", "alice", "-P", "nope", "-t", "alice/x", "-m", "m")
    assert bad.returncode != 0
    good = mosquitto_pub(broker.port, "-u", "alice", "-P", "wonderland", "-t", "alice/x", "-m", "m")
    assert good.returncode == 0, good.stderr


def test_anonymous_on_with_acl_patterns(start_broker, auth_files):
    passwd, acl = auth_files
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}", "--allow-anonymous")
    watcher = Session(broker.port, "w", "bob", "builder")
    watcher.subscribe("#", 1)
    anon = Session(broker.port, "dev1")
    # %c: its own subtree only; read-only public/#.
    anon.publish("devices/dev1/temp", b"ok")
    anon.publish("devices/dev2/temp", b"spoof")
    anon.publish("public/x", b"read-only")
    assert anon.subscribe("public/#", 1) == [1]
    assert anon.subscribe("alice/#", 1) == [0x80]  # 3.1.1 failure
    anon.publish("devices/dev1/done", b"end")
    assert wait_until(lambda: ("devices/dev1/done", b"end") in watcher.messages, 5)
    topics = [t for t, _ in watcher.messages]
    assert "devices/dev1/temp" in topics
    assert "devices/dev2/temp" not in topics
    assert "public/x" not in topics
    watcher.close()
    anon.close()


def test_acl_read_write_deny_and_user_pattern(start_broker, auth_files):
    passwd, acl = auth_files
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}", shards=2)
    alice = Session(broker.port, "alice-1", "alice", "wonderland")
    bob = Session(broker.port, "bob-1", "bob", "builder")
    assert alice.subscribe("alice/#", 1) == [1]
    assert alice.subscribe("news/#", 1) == [1]
    assert alice.subscribe("users/alice/#", 0) == [0]  # pattern %u
    assert alice.subscribe("users/bob/#", 0) == [0x80]
    bob.publish("alice/hello", b"1")
    bob.publish("alice/secret", b"2")  # deny wins, checked at delivery
    bob.publish("news/today", b"3")
    bob.publish("users/alice/inbox", b"4")
    alice.publish("news/today", b"alice may not write news")
    alice.publish("alice/own", b"5")
    assert wait_until(lambda: len(alice.messages) >= 4, 5)
    time.sleep(0.3)
    assert sorted(alice.messages) == sorted([("alice/hello", b"1"),
                                             ("news/today", b"3"),
                                             ("users/alice/inbox", b"4"),
                                             ("alice/own", b"5")])
    alice.close()
    bob.close()


def test_v5_refusals_carry_reason_codes(start_broker, auth_files):
    passwd, acl = auth_files
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}")
    # mosquitto_pub -V 5 reports the PUBACK reason code of a refused publish.
    out = mosquitto_pub(broker.port, "-V", "5", "-q", "1", "-u", "alice", "-P", "wonderland",
                        "-t", "bob/x", "-m", "m", "-d")
    assert "received PUBACK (Mid: 1, RC:135)" in out.stdout, out  # 0x87 not authorized
    alice = Session(broker.port, "alice-5", "alice", "wonderland", protocol=paho.MQTTv5)
    assert alice.subscribe("bob/#", 1) == [0x87]
    assert alice.subscribe("$share/g/alice/#", 1) == [0x9E]  # shared subscriptions denied
    alice.close()


def test_will_to_a_forbidden_topic_is_refused(start_broker, auth_files):
    passwd, acl = auth_files
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}")
    out = subprocess.run([MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(broker.port), "-u", "alice",
                          "-P", "wonderland", "-t", "alice/#", "--will-topic", "bob/will",
                          "--will-payload", "x", "-C", "1", "-W", "2"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode != 0
    assert "not authori" in (out.stdout + out.stderr).lower(), out


def test_per_user_limits(start_broker, auth_files):
    passwd, acl = auth_files
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}")
    alice = Session(broker.port, "alice-l", "alice", "wonderland")
    assert alice.subscribe("alice/#", 2) == [1]  # max_qos 1 downgrades the grant
    alice.close()
    # mosquitto_sub sees the downgrade as well.
    out = subprocess.run([MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(broker.port), "-u", "alice",
                          "-P", "wonderland", "-t", "alice/#", "-q", "2", "-d", "-C", "1", "-W",
                          "1"], capture_output=True, text=True, timeout=20)
    assert "Subscribed (mid: 1): 1" in out.stdout, out.stdout
    bob = Session(broker.port, "bob-l", "bob", "builder")
    assert bob.subscribe("a", 0) == [0]
    assert bob.subscribe("b", 0) == [0]
    assert bob.subscribe("c", 0) == [0x80]  # max_subscriptions 2
    assert bob.subscribe("a", 1) == [1]  # replacing one is not one more
    bob.close()


def test_sighup_reload_keeps_connections(start_broker, auth_files):
    passwd, acl = auth_files
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}", shards=2)
    alice = Session(broker.port, "alice-r", "alice", "wonderland")
    assert alice.subscribe("alice/#", 1) == [1]
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), "alice", "looking-glass"], check=True)
    broker.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "SIGHUP: reloaded" in broker.log(), 5), broker.log()
    assert "password file changed" in broker.log()
    # The next CONNECT sees the new password; the old one no longer works.
    assert connect_rc(broker.port, "alice", "wonderland", "alice-old") == 4
    assert connect_rc(broker.port, "alice", "looking-glass", "alice-new") == 0
    # The existing connection stayed up and still gets messages.
    mosquitto_pub(broker.port, "-u", "bob", "-P", "builder", "-t", "alice/after", "-m", "x")
    assert wait_until(lambda: ("alice/after", b"x") in alice.messages, 5)
    # A bad file is refused and the previous files stay in force.
    acl.write_text("topic read a/#/b\n")  # "#" not last: a load error
    broker.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "reload failed" in broker.log(), 5), broker.log()
    assert connect_rc(broker.port, "alice", "looking-glass", "alice-new2") == 0
    # An ACL change applies to connected clients at their next check.
    acl.write_text(ACL.replace("topic readwrite alice/#", "topic readwrite alice/public/#"))
    broker.process.send_signal(signal.SIGHUP)
    assert wait_until(lambda: "ACL file changed" in broker.log(), 5), broker.log()
    mosquitto_pub(broker.port, "-u", "bob", "-P", "builder", "-t", "alice/private", "-m", "p")
    mosquitto_pub(broker.port, "-u", "bob", "-P", "builder", "-t", "alice/public/x", "-m", "q")
    assert wait_until(lambda: ("alice/public/x", b"q") in alice.messages, 5)
    assert ("alice/private", b"p") not in alice.messages
    alice.close()


def test_bad_auth_flags_stop_start_up(tmp_path):
    """A typo or a missing file is fatal at start-up, with a message."""
    from conftest import BINARY
    bad_flag = subprocess.run([str(BINARY), "--allow-anonymous=maybe"], capture_output=True,
                              text=True, timeout=20)
    assert bad_flag.returncode == 2
    assert "--allow-anonymous=maybe: must be true, false or auto" in bad_flag.stderr
    missing = subprocess.run([str(BINARY), "--listen=127.0.0.1:0",
                              f"--password-file={tmp_path / 'nope'}"],
                             capture_output=True, text=True, timeout=20)
    assert missing.returncode == 1
    assert "nope" in missing.stderr


@pytest.mark.parametrize("protocol", [paho.MQTTv311, paho.MQTTv5])
def test_max_connections_per_user(start_broker, tmp_path, protocol):
    passwd = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(passwd), "carol", "secret"], check=True)
    acl = tmp_path / "acl"
    acl.write_text("user carol\ntopic readwrite carol/#\nlimit max_connections 2\n")
    # Two shards: the limit is per user over all of them, whichever shard
    # each client id lives on.
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}", shards=2)
    refused = 0x97 if protocol == paho.MQTTv5 else 5  # quota exceeded / not authorized
    first = Session(broker.port, "carol-1", "carol", "secret", protocol=protocol)
    second = Session(broker.port, "carol-2", "carol", "secret", protocol=protocol)
    assert connect_rc(broker.port, "carol", "secret", "carol-3", protocol) == refused
    # A takeover by a client id already connected replaces a connection.
    again = Session(broker.port, "carol-2", "carol", "secret", protocol=protocol)
    assert connect_rc(broker.port, "carol", "secret", "carol-3", protocol) == refused
    # mosquitto_pub is refused as well, and its refusal holds no slot.
    out = mosquitto_pub(broker.port, "-u", "carol", "-P", "secret", "-t", "carol/x", "-m", "m",
                        *(["-V", "5"] if protocol == paho.MQTTv5 else []))
    assert out.returncode != 0, out
    # Once one disconnects, a new connection gets in (the DISCONNECT is
    # handled asynchronously: retry briefly).
    first.close()
    assert wait_until(
        lambda: connect_rc(broker.port, "carol", "secret", "carol-4", protocol) == 0, 5)
    # connect_rc disconnected again: a long-lived one takes the slot back.
    fourth = Session(broker.port, "carol-4", "carol", "secret", protocol=protocol)
    assert connect_rc(broker.port, "carol", "secret", "carol-5", protocol) == refused
    # An abrupt end (no DISCONNECT) frees a slot too.
    fourth.client.loop_stop()
    fourth.client.socket().close()
    assert wait_until(
        lambda: connect_rc(broker.port, "carol", "secret", "carol-5", protocol) == 0, 5)
    again.close()
    second.close()


def test_acl_publish_rate_throttles_that_user_only(start_broker, tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run([MOSQUITTO_PASSWD, "-c", "-b", str(passwd), "dave", "pw"], check=True)
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), "erin", "pw"], check=True)
    acl = tmp_path / "acl"
    acl.write_text("user dave\ntopic readwrite rate/#\nlimit publish_rate 20\n\n"
                   "user erin\ntopic readwrite rate/#\n")
    broker = start_broker(f"--password-file={passwd}", f"--acl-file={acl}", shards=2)
    watcher = Session(broker.port, "rate-watch", "erin", "pw")
    assert watcher.subscribe("rate/#", 1) == [1]

    # erin has no limit: mosquitto_pub -l sends 200 lines as fast as it can.
    out = subprocess.run([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(broker.port), "-u", "erin",
                          "-P", "pw", "-i", "erin-pub", "-t", "rate/erin", "-l", "-q", "1"],
                         input="".join(f"e{i}\n" for i in range(200)), capture_output=True,
                         text=True, timeout=20)
    assert out.returncode == 0, out.stderr

    # dave's 60 QoS 1 messages: 20 at once, then 20 a second, none lost.
    dave = Session(broker.port, "dave-pub", "dave", "pw")
    start = time.monotonic()
    infos = [dave.client.publish("rate/dave", f"d{i}", 1) for i in range(60)]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published()
    elapsed = time.monotonic() - start
    assert wait_until(lambda: len(watcher.messages) == 260, 10), len(watcher.messages)
    assert [p for t, p in watcher.messages if t == "rate/dave"] == [
        f"d{i}".encode() for i in range(60)]
    # The 60th cannot be read before 59 / 20 - 1 = 1.95 s: a bound the rate sets.
    assert elapsed >= 1.5, elapsed
    log = broker.log()
    assert "throttling" in log and "(dave-pub)" in log and "20 msg/s" in log
    assert "(erin-pub)" not in log
    dave.close()
    watcher.close()
