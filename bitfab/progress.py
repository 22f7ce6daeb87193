"""Progress a person can follow in a terminal and in a log file alike: one line per stage start
and end with the elapsed time, a line every `heartbeat_s` seconds while a stage runs, counts
(i/n) for chunked work, and the INFO messages of sim/ and synth/ (Verilator builds, yosys,
nextpnr). Lines go to stderr, so `--json` output on stdout stays machine-readable."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

HEARTBEAT_S = 20.0


class Reporter:
    def __init__(self, heartbeat_s: float = HEARTBEAT_S, count_every_s: float = 2.0) -> None:
        self.heartbeat_s, self.count_every_s = heartbeat_s, count_every_s
        self.started = time.monotonic()
        self.stages: list[str] = []  # the stages running now, outermost first
        self.interrupted: str | None = None  # the innermost stage a Ctrl-C ended
        self._last_count = 0.0
        self._lock = threading.Lock()

    @property
    def current(self) -> str | None:
        return self.stages[-1] if self.stages else None

    def line(self, text: str) -> None:
        with self._lock:
            print(f"[{time.monotonic() - self.started:7.1f} s] {text}", file=sys.stderr, flush=True)

    @contextmanager
    def stage(self, what: str) -> Iterator[None]:
        """`what ...` now, `what: done in N s` at the end, `what: N s so far` while it runs."""
        self.line(f"{what} ...")
        self.stages.append(what)
        began = time.monotonic()
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(self.heartbeat_s):
                self.line(f"{what}: {time.monotonic() - began:.0f} s so far")

        thread = threading.Thread(target=heartbeat, daemon=True)
        thread.start()
        try:
            yield
        except KeyboardInterrupt:
            self.interrupted = self.interrupted or what
            raise
        finally:
            stop.set()
            thread.join()
            self.stages.pop()
        self.line(f"{what}: done in {time.monotonic() - began:.1f} s")

    def count(self, what: str, done: int, total: int) -> None:
        """`what: done/total`, at most every `count_every_s` seconds (always the last one)."""
        now = time.monotonic()
        if done >= total or now - self._last_count >= self.count_every_s:
            self._last_count = now
            self.line(f"{what}: {done}/{total}")


class _ToReporter(logging.Handler):
    def __init__(self, reporter: Reporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self.reporter.line(record.getMessage())


@contextmanager
def reporting(reporter: Reporter) -> Iterator[Reporter]:
    """Route the INFO messages of the `bitfab` loggers (bitfab.sim, bitfab.synth) to `reporter`."""
    logger = logging.getLogger("bitfab")
    handler = _ToReporter(reporter)
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield reporter
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
