"""Training progress for people: a live bar on a terminal, plain lines in a log.

On a terminal, a tqdm bar (steps/s, ETA, the latest losses and scores). When stderr is not a
terminal (a log file, a pipe, a container's log), a bar's carriage-return redraws would fill
the log with thousands of partial lines, so progress is one plain line every `every_s`
seconds instead (and one at the end):

    12:03:41 train dcgan: step 1200/3000 (40%), 6.21 steps/s, eta 4m50s, budget 1m10s left,
             loss_d 0.612 loss_g 1.874 d_real 0.71, fid 21.4 (floor 9.9, best 19.8 at 1000)

(one line in the log; wrapped here).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def format_duration(seconds: float) -> str:
    """A short duration: 45s, 4m50s, 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _quality_text(quality: dict[str, Any] | None, best: dict[str, Any] | None) -> str:
    if not quality or "fid" not in quality:
        return ""
    text = f"fid {quality['fid']:.2f}"
    extra = []
    if "fid_floor" in quality:
        extra.append(f"floor {quality['fid_floor']:.2f}")
    if best is not None and "fid" in best:
        extra.append(f"best {best['fid']:.2f} at {best.get('step', '?')}")
    return text + (f" ({', '.join(extra)})" if extra else "")


class Progress:
    """Reports a run's progress; `update` after every step, `close` at the end."""

    def __init__(self, total: int, start: int, desc: str, every_s: float = 10.0,
                 stream: TextIO | None = None, budget_s: float | None = None, spent_s: float = 0.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total, self.start, self.done = total, start, start
        self.desc = desc
        self.every_s = every_s
        self.budget_s, self.spent_s = budget_s, spent_s  # budget and what earlier sessions spent of it
        self.began = time.monotonic()
        self.last_line = self.began
        self.lined = start  # the step of the last plain line
        self.metrics: dict[str, float] = {}
        self.quality: dict[str, Any] | None = None
        self.best: dict[str, Any] | None = None
        self.bar = None
        if _is_terminal(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True, file=self.stream)

    def update(self, done: int, metrics: dict[str, float] | None = None, quality: dict[str, Any] | None = None,
               best: dict[str, Any] | None = None) -> None:
        """Step `done` finished; `metrics` (losses) and `quality` (an evaluation) when new."""
        steps, self.done = done - self.done, done
        if metrics:
            self.metrics = dict(list(metrics.items())[:3])
        if quality is not None:
            self.quality = quality
        if best is not None:
            self.best = best
        if self.bar is not None:
            self.bar.update(steps)
            if metrics or quality is not None:
                postfix = {k: f"{v:.3f}" for k, v in self.metrics.items()}
                if self.quality and "fid" in self.quality:
                    postfix["fid"] = f"{self.quality['fid']:.2f}"
                self.bar.set_postfix(postfix, refresh=False)
            return
        now = time.monotonic()
        if now - self.last_line >= self.every_s:
            self.last_line = now
            self._line(now)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.done > self.lined:
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        self.lined = self.done
        elapsed = now - self.began
        rate = (self.done - self.start) / elapsed if elapsed > 0 else 0.0
        parts = [f"step {self.done}/{self.total} ({self.done / self.total:.0%})", f"{rate:.2f} steps/s"]
        eta = (self.total - self.done) / rate if rate > 0 and self.done < self.total else None
        left = None if self.budget_s is None else max(0.0, self.budget_s - self.spent_s - elapsed)
        if eta is not None and (left is None or eta < left):
            parts.append(f"eta {format_duration(eta)}")
        if left is not None:
            parts.append(f"budget {format_duration(left)} left")
        if self.metrics:
            parts.append(" ".join(f"{k} {v:.3f}" for k, v in self.metrics.items()))
        quality = _quality_text(self.quality, self.best)
        if quality:
            parts.append(quality)
        self.stream.write(f"{time.strftime('%H:%M:%S')} {self.desc}: {', '.join(parts)}\n")
        self.stream.flush()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
