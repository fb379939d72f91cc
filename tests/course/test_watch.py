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
