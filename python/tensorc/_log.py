"""Logging and progress for tensorc: every message goes through the standard `logging` logger
"tensorc"; engine builds show a progress bar (tqdm when installed, else one plain line per engine)
on an interactive stderr, or when TENSORC_PROGRESS=1."""
import logging
import os
import sys
import time

logger = logging.getLogger("tensorc")


def progress_enabled(progress=None):
    if progress is not None:
        return bool(progress)
    env = os.environ.get("TENSORC_PROGRESS")
    if env is not None:
        return env not in ("", "0", "false", "no")
    return sys.stderr.isatty()


class Progress:
    """A progress display over `total` steps: `step(text)` after each one, `close()` at the end."""

    def __init__(self, total, desc, enabled):
        self.total, self.desc, self.done = total, desc, 0
        self.start = time.perf_counter()
        self.bar = None
        self.enabled = enabled and total > 0
        if self.enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, unit="engine", file=sys.stderr, leave=False)
            except ImportError:
                self.bar = None

    def step(self, text):
        self.done += 1
        logger.info("%s %d/%d: %s", self.desc, self.done, self.total, text)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
        else:
            sys.stderr.write(f"\r{self.desc}: {self.done}/{self.total} {text}\x1b[K")
            if self.done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        logger.info("%s: %d done in %.2f s", self.desc, self.done, time.perf_counter() - self.start)
