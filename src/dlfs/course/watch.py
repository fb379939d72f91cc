"""The watch loop (``dlfs watch``): re-check a topic whenever the learner saves.

File changes come from ``watchfiles`` (with an mtime-polling fallback where native
watching fails); commands come from typed lines on stdin. Both feed one queue. When stdin
is closed or not readable (``dlfs watch < /dev/null``, a background job) there are no keys,
but watching goes on until Ctrl-C: the end of stdin never means quit.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from pathlib import Path

import click

COMMANDS = "[h] hint  [c] check again  [l] list  [n] next topic  [s] skip topic  [q] quit  (then Enter)"


def _watch_native(paths: list[Path], events: queue.Queue, stop: threading.Event) -> None:
    import watchfiles

    folders = sorted({str(p.parent) for p in paths})
    names = {str(p.resolve()) for p in paths}
    for changes in watchfiles.watch(*folders, stop_event=stop, debounce=300, rust_timeout=500,
                                    yield_on_timeout=False, raise_interrupt=False):
        if any(str(Path(c[1]).resolve()) in names for c in changes):
            events.put(("changed", None))


def _watch_polling(paths: list[Path], events: queue.Queue, stop: threading.Event,
                   interval: float = 0.5) -> None:
    def stamp():
        return [p.stat().st_mtime_ns if p.exists() else None for p in paths]

    last = stamp()
    while not stop.wait(interval):
        now = stamp()
        if now != last:
            last = now
            events.put(("changed", None))


def watch_files(paths: list[Path], events: queue.Queue, stop: threading.Event) -> threading.Thread:
    def run():
        try:
            _watch_native(paths, events, stop)
        except Exception:      # no inotify, a network filesystem, a missing wheel...
            _watch_polling(paths, events, stop)

    thread = threading.Thread(target=run, name="dlfs-watch", daemon=True)
    thread.start()
    return thread


NO_KEYS = "(no keyboard input: stdin is closed, so only saves are watched; Ctrl-C quits)"


def read_keys(events: queue.Queue, stream=None) -> threading.Thread:
    """Put ("key", first letter) for each line typed; ("keys-closed", None) once, at the end
    of the input (which is not a request to quit)."""
    def run():
        source = sys.stdin if stream is None else stream
        try:
            for line in source:
                events.put(("key", line.strip().lower()[:1]))
        except (OSError, ValueError, TypeError):      # no stdin, or a closed one
            pass
        events.put(("keys-closed", None))

    thread = threading.Thread(target=run, name="dlfs-keys", daemon=True)
    thread.start()
    return thread


def loop(get_paths, on_check, on_key, poll: float = 0.2, *, stdin=None,
         until: threading.Event | None = None) -> None:
    """Generic event loop: ``on_check()`` after changes, ``on_key(k)`` returns False to quit.

    get_paths: () -> list of files to watch (may change when the topic changes).
    stdin: where keys come from (default sys.stdin); until: an event that ends the loop
    (besides Ctrl-C and on_key returning False).
    """
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    paths = get_paths()
    watch_files(paths, events, stop)
    read_keys(events, stdin)
    keys = True
    on_check()
    click.echo("\n" + COMMANDS)
    try:
        while until is None or not until.is_set():
            try:
                kind, value = events.get(timeout=poll)
            except queue.Empty:
                continue
            if kind == "keys-closed":
                keys = False
                click.echo(NO_KEYS)
                continue
            if kind == "changed":
                time.sleep(0.1)
                while not events.empty():            # coalesce bursts of saves
                    k, v = events.get_nowait()
                    if k != "changed":
                        events.put((k, v))
                        break
                on_check()
            elif kind == "key":
                if value == "c" or value == "":
                    on_check()
                elif on_key(value) is False:
                    break
            new_paths = get_paths()
            if new_paths != paths:                   # moved to another topic
                stop.set()
                stop = threading.Event()
                paths = new_paths
                watch_files(paths, events, stop)
                on_check()
            click.echo("\n" + (COMMANDS if keys else NO_KEYS))
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
