"""The progress of a long command, for the operator watching it."""

import logging
import sys
import time

logger = logging.getLogger(__name__)


class Progress:
    """Records done, rate and time left: a bar on a terminal, log lines otherwise."""

    def __init__(self, label, total, stream=None, interval=5.0):
        self.label = label
        self.total = total
        self.done = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = interval
        self.started = self.last_line = time.monotonic()

    def __call__(self, count):
        self.done += count
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + self._line(now))
            self.stream.flush()
        elif now - self.last_line >= self.interval:
            self.last_line = now
            logger.info(self._line(now))

    def _line(self, now):
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate and self.total > self.done else 0
        width = 30
        filled = int(width * self.done / self.total) if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} records, "
            f"{rate:,.0f}/s, {left:,.0f} s left"
        )

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
