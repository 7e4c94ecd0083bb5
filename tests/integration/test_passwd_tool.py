"""The shardmq-passwd binary: create, add, update, delete, batch, stdin, -U,
error messages and exit codes, file mode. Hashes are checked independently
with Python's hashlib (PBKDF2-HMAC-SHA512, as Mosquitto defines "$7$")."""
import base64
import hashlib
import os
import pathlib
import pty
import select
import shutil
import stat
import subprocess
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOL = pathlib.Path(os.environ.get("SHARDMQ_PASSWD_BIN",
                                   ROOT / "build" / "tools" / "passwd" / "shardmq-passwd"))
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


def run(*args, stdin=None):
    """Runs the tool with stdin from a pipe (never the test's terminal)."""
    return subprocess.run([str(TOOL), *map(str, args)], input=stdin or "", text=True,
                          capture_output=True, timeout=60)


def entries(path):
    """user -> hash for the non-comment lines of a password file."""
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            user, _, hashed = line.partition(":")
            out[user] = hashed
    return out


def verify(hashed, password):
    """True when a "$7$" or "$6$" hash matches, computed without our code."""
    parts = hashed.split("$")
    if parts[1] == "7":
        iterations, salt, digest = int(parts[2]), parts[3], parts[4]
        computed = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt),
                                       iterations, 64)
    else:
        salt, digest = parts[2], parts[3]
        computed = hashlib.sha512(password.encode() + base64.b64decode(salt)).digest()
    return computed == base64.b64decode(digest)


@pytest.fixture
def pwfile(tmp_path):
    return tmp_path / "passwd"


@pytest.fixture(autouse=True)
def need_tool():
    if not TOOL.exists():
        pytest.skip(f"{TOOL} not built")


def test_create_batch_mode_0600_and_default_iterations(pwfile):
    result = run("-c", "-b", pwfile, "alice", "s3cret pass")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""
    assert stat.S_IMODE(pwfile.stat().st_mode) == 0o600
    hashed = entries(pwfile)["alice"]
    assert hashed.startswith("$7$")
    assert int(hashed.split("$")[2]) >= 1000  # Stronger than Mosquitto's 101.
    assert verify(hashed, "s3cret pass")
    assert not verify(hashed, "s3cret pas")
    assert not list(pwfile.parent.glob("passwd.tmp*"))


def test_add_update_delete_keep_comments_and_mode(pwfile):
    assert run("-c", "-b", pwfile, "alice", "a1").returncode == 0
    pwfile.write_text("# managed by hand\n" + pwfile.read_text() + "\n# tail\n")
    os.chmod(pwfile, 0o640)
    assert run("-b", pwfile, "bob", "b1").returncode == 0
    assert run("-b", "-I", "2000", pwfile, "alice", "a2").returncode == 0
    users = entries(pwfile)
    assert verify(users["alice"], "a2") and users["alice"].startswith("$7$2000$")
    assert verify(users["bob"], "b1")
    lines = pwfile.read_text().splitlines()
    assert lines[0] == "# managed by hand" and lines[1].startswith("alice:")
    assert lines[2:4] == ["", "# tail"] and lines[4].startswith("bob:")
    assert stat.S_IMODE(pwfile.stat().st_mode) == 0o640  # An existing file keeps its mode.

    assert run("-D", pwfile, "alice").returncode == 0
    assert set(entries(pwfile)) == {"bob"}
    result = run("-D", pwfile, "alice")
    assert result.returncode == 1
    assert result.stderr == f'shardmq-passwd: {pwfile}: no user "alice"\n'


def test_password_from_stdin(pwfile):
    assert run("-c", pwfile, "alice", stdin="from stdin\n").returncode == 0
    assert verify(entries(pwfile)["alice"], "from stdin")
    # Twice, as scripts for mosquitto_passwd send it; and without a newline.
    assert run(pwfile, "bob", stdin="twice\ntwice\n").returncode == 0
    assert run(pwfile, "carol", stdin="no newline").returncode == 0
    users = entries(pwfile)
    assert verify(users["bob"], "twice") and verify(users["carol"], "no newline")

    result = run(pwfile, "dave", stdin="one\ntwo\n")
    assert result.returncode == 1 and "passwords do not match" in result.stderr
    result = run(pwfile, "dave", stdin="")
    assert result.returncode == 1 and "no password on stdin" in result.stderr
    result = run(pwfile, "dave", stdin="\n")
    assert result.returncode == 1 and "empty password" in result.stderr
    assert "dave" not in entries(pwfile)


def run_on_tty(args, typed):
    """Runs the tool on a pseudo-terminal, typing each of `typed` after a
    prompt; returns (exit code, everything the terminal showed)."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(str(TOOL), [str(TOOL), *map(str, args)])
    shown = b""
    pending = list(typed)
    answered = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # The child exited and closed the terminal.
                break
            if not chunk:
                break
            shown += chunk
            # Type only after a new prompt: the tool drops what was typed
            # before it turns echo off (TCSAFLUSH), as getpass does.
            if pending and shown.lower().count(b"password:") > answered:
                answered += 1
                os.write(fd, pending.pop(0).encode() + b"\n")
    give_up = time.monotonic() + 10
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > give_up:
            os.kill(pid, 9)  # Never hang the suite on a tool that still waits for input.
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.05)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), shown.decode(errors="replace")


def test_terminal_prompts_twice_without_echo(pwfile):
    code, shown = run_on_tty(["-c", pwfile, "alice"], ["hunter2", "hunter2"])
    assert code == 0, shown
    assert "Password:" in shown and "Reenter password:" in shown
    assert "hunter2" not in shown  # Echo was off.
    assert verify(entries(pwfile)["alice"], "hunter2")

    code, shown = run_on_tty([pwfile, "bob"], ["one", "two"])
    assert code == 1 and "passwords do not match" in shown
    assert "bob" not in entries(pwfile)


def test_update_plain_file(pwfile):
    pwfile.write_text("# plain\nbob:pw one\ncarol:x:y\n")
    os.chmod(pwfile, 0o600)
    result = run("-U", pwfile)
    assert result.returncode == 0, result.stderr
    users = entries(pwfile)
    assert verify(users["bob"], "pw one") and verify(users["carol"], "x:y")
    assert pwfile.read_text().startswith("# plain\nbob:$7$")
    before = pwfile.read_text()
    assert run("-U", pwfile).returncode == 0  # Idempotent.
    assert pwfile.read_text() == before


def test_errors_name_file_and_line_and_leave_file_alone(pwfile, tmp_path):
    pwfile.write_text("# ok\nalice:notahash\n")
    result = run("-b", pwfile, "bob", "pw")
    assert result.returncode == 1
    assert result.stderr.startswith(f'shardmq-passwd: {pwfile}:2: user "alice": ')
    assert pwfile.read_text() == "# ok\nalice:notahash\n"

    plain = tmp_path / "plain"
    plain.write_text("a:1\nbroken\n")
    result = run("-U", plain)
    assert result.returncode == 1
    assert result.stderr == f"shardmq-passwd: {plain}:2: no ':' between user and password\n"

    missing = tmp_path / "missing"
    result = run("-b", missing, "u", "p")
    assert result.returncode == 1
    assert str(missing) in result.stderr and "use -c to create it" in result.stderr
    assert not missing.exists()

    result = run("-c", "-b", pwfile, "a:b", "p")
    assert result.returncode == 1 and "contains ':'" in result.stderr


@pytest.mark.parametrize("args, message", [
    ([], "expected 2 arguments"),
    (["-b", "f", "u"], "expected 3 arguments"),
    (["-D", "-c", "f", "u"], "-c and -D exclude each other"),
    (["-b", "-D", "f", "u"], "exclude each other"),
    (["-I", "0", "f", "u"], "-I wants a number"),
    (["-I"], "-I needs a value"),
    (["-H", "sha512", "f", "u"], "-H sha512 is not supported"),
    (["-x", "f", "u"], "unknown option -x"),
])
def test_usage_errors(args, message):
    result = run(*args)
    assert result.returncode == 1
    assert message in result.stderr and "Usage:" in result.stderr


def test_help():
    result = run("--help")
    assert result.returncode == 0 and result.stdout.startswith("Usage:")


@pytest.mark.skipif(MOSQUITTO_PASSWD is None, reason="mosquitto_passwd not installed")
def test_mosquitto_passwd_accepts_our_file(pwfile):
    assert run("-c", "-b", pwfile, "ours", "pw1").returncode == 0
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(pwfile), "theirs", "pw2"], check=True)
    assert run("-b", pwfile, "ours2", "pw3").returncode == 0
    users = entries(pwfile)
    assert verify(users["ours"], "pw1") and verify(users["theirs"], "pw2")
    assert verify(users["ours2"], "pw3")
