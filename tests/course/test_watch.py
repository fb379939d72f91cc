import queue
import threading
import time

from dlfs.course import watch


def test_polling_fallback_reports_a_save(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    events, stop = queue.Queue(), threading.Event()
    t = threading.Thread(target=watch._watch_polling, args=([f], events, stop, 0.05), daemon=True)
    t.start()
    time.sleep(0.2)
    f.write_text("x = 2  # a longer line so the size changes too\n")
    try:
        assert events.get(timeout=3) == ("changed", None)
    finally:
        stop.set()


def test_native_watcher_reports_a_save(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    events, stop = queue.Queue(), threading.Event()
    watch.watch_files([f], events, stop)
    time.sleep(0.5)
    f.write_text("x = 2\n")
    try:
        assert events.get(timeout=5) == ("changed", None)
    finally:
        stop.set()


def test_closed_stdin_keeps_watching_without_keys(tmp_path, capsys):
    """End of input is not a request to quit: the loop goes on reacting to saves."""
    import io

    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    checks, keys, until = [], [], threading.Event()

    def on_key(key):
        keys.append(key)
        return key != "q"

    t = threading.Thread(target=watch.loop, args=(lambda: [f], lambda: checks.append(1), on_key),
                         kwargs={"poll": 0.05, "stdin": io.StringIO(""), "until": until},
                         daemon=True)
    t.start()
    try:
        time.sleep(1.0)
        assert t.is_alive(), "the loop quit when stdin ended"
        assert keys == [] and len(checks) == 1
        f.write_text("x = 2  # a longer line so the size changes too\n")
        deadline = time.monotonic() + 5
        while len(checks) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(checks) >= 2, "a save after stdin ended was not checked"
    finally:
        until.set()
        t.join(timeout=5)
    assert not t.is_alive()
    assert watch.NO_KEYS in capsys.readouterr().out


def test_typed_keys_still_reach_the_loop(tmp_path):
    import io

    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    keys = []

    def on_key(key):
        keys.append(key)
        return key != "q"

    t = threading.Thread(target=watch.loop, args=(lambda: [f], lambda: None, on_key),
                         kwargs={"poll": 0.05, "stdin": io.StringIO("h\nQuit\n")}, daemon=True)
    t.start()
    t.join(timeout=5)
    assert not t.is_alive() and keys == ["h", "q"]


def test_dlfs_watch_with_stdin_from_dev_null_runs_until_ctrl_c(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "out.txt"
    env = dict(os.environ, DLFS_WORKSPACE=str(tmp_path / "ws"))
    with open(os.devnull) as devnull, open(out, "w") as sink:
        # a suite started in the background (`pytest &`) runs with SIGINT ignored, and children
        # inherit that: give `dlfs watch` the default disposition a terminal would
        proc = subprocess.Popen([sys.executable, "-m", "dlfs.cli", "watch", "1"], stdin=devnull,
                                stdout=sink, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while watch.NO_KEYS not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, f"`dlfs watch 1 </dev/null` exited:\n{out.read_text()}"
            time.sleep(0.2)
        time.sleep(1.0)
        assert proc.poll() is None, f"`dlfs watch 1 </dev/null` exited:\n{out.read_text()}"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in out.read_text()
