"""Training time, as the time budget and the learning-rate schedule count it.

Only training steps count: validation, checkpoints and evaluation do not, so a budget means
the same on a slow disk as on a fast one. The clock is read at the training loop's sync
points (every train.log_every steps and at the end of an epoch, where the host waits for the
device anyway); between readings the time is estimated from the pace of the last window.
Under torchrun every process takes the slowest one's reading, so all of them use the same
learning rate at every step and stop at the same step.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    def __init__(self, spent: float, budget_s: float, agree: Callable[[float], float] = lambda t: t,
                 now: Callable[[], float] = time.perf_counter):
        self._now = now  # seconds from an arbitrary start (a fake clock in tests)
        self.spent = spent  # seconds of training steps, as of the last reading (kept in checkpoints)
        self.budget_s = budget_s  # 0: no budget
        self._agree = agree  # a reading -> the one all processes use
        self._pace = 0.0  # seconds per step over the last window
        self._steps = 0  # steps since the last reading
        self._mark = 0.0

    def start(self) -> None:
        """Steps count from now (the start of an epoch's training)."""
        self._mark, self._steps = self._now(), 0

    def step(self) -> None:
        self._steps += 1

    def read(self) -> None:
        """Take the time spent from the clock (a sync point)."""
        t = self._now()
        spent = self._agree(self.spent + (t - self._mark))
        if self._steps:
            self._pace = (spent - self.spent) / self._steps
        self.spent, self._mark, self._steps = spent, t, 0

    def estimate(self) -> float:
        return self.spent + self._steps * self._pace

    def fraction(self) -> float:
        """The share of the budget spent (0 without a budget)."""
        return min(1.0, self.estimate() / self.budget_s) if self.budget_s else 0.0

    def out(self) -> bool:
        """Whether the budget is spent."""
        return self.budget_s > 0 and self.estimate() >= self.budget_s


def fraction(epochs: int, progress: float, clock: Clock) -> float:
    """How far training is (0 to 1) for the schedule: the share of the epochs or of the time
    budget, whichever is further."""
    by_epochs = progress / epochs if epochs else 0.0
    return max(by_epochs, clock.fraction()) if clock.budget_s else by_epochs
