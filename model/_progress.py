"""A progress bar for fit: tqdm's when it is installed, else one plain line on stderr."""

import sys
import time


class Progress:
    """``update(n, cost)`` after each chunk of ``n`` iterations; ``close()`` at the end."""

    def __init__(self, total, desc="fit", enabled=True, stream=None):
        self.total = total
        self.desc = desc
        self.enabled = enabled and total > 0
        self.done = 0
        self._bar = None
        self._stream = stream or sys.stderr
        self._start = time.perf_counter()
        self._last = 0.0
        if not self.enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            try:
                self._bar = tqdm(total=total, desc=desc, unit="it", file=self._stream, leave=True)
            except (BrokenPipeError, ValueError):  # see update
                self.enabled = False

    def update(self, n, cost=None):
        self.done += n
        if not self.enabled:
            return
        try:
            self._show(n, cost)
        except (BrokenPipeError, ValueError):  # the stream's reader went (`2>&1 | head`) or it was closed
            self.enabled = False  # the bar is gone; the fit goes on (it is only a display)

    def _show(self, n, cost):
        if self._bar is not None:
            if cost is not None:
                self._bar.set_postfix(cost=f"{cost:.6f}", refresh=False)
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"\r{self.desc}: {self.done}/{self.total} it ({100 * self.done / self.total:3.0f}%), {rate:,.0f} it/s"
        if cost is not None:
            text += f", cost {cost:.6f}"
        self._stream.write(text)
        self._stream.flush()

    def close(self):
        if not self.enabled:
            return
        try:
            if self._bar is not None:
                self._bar.close()
            else:
                self._last = 0.0
                self.update(0)
                if self.enabled:
                    self._stream.write("\n")
                    self._stream.flush()
        except (BrokenPipeError, ValueError):
            self.enabled = False
