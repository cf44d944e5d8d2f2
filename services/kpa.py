"""How many replicas a container group should run: the decision, without I/O.

In the spirit of Knative's pod autoscaler (KPA, `pkg/autoscaler/scaling/autoscaler.go`):

- Two windows over the observed metric (calls in flight summed over every gateway process, or
  the replicas' mean CPU): the **stable** window (default 60 s) sets the count in normal times;
  the **panic** window (a tenth of it) reacts to bursts. When the panic window asks for at least
  `panic_threshold` times the ready replicas, the group panics: it scales on the panic window
  and never down, until the burst has been over for a whole stable window.
- Each step is **bounded**: up to `max_scale_up_rate` times the ready replicas, down to the
  ready replicas divided by `max_scale_down_rate`.
- **Scale-down delay**: the count is the highest recommended during the last
  `scale_down_delay` seconds, so a short lull does not remove replicas that are needed again.
- **Scale to zero** (`min_replicas` 0): only after no call at all for `idle_before_zero`
  seconds; a call that arrives at zero asks for a replica at once.

One `GroupScaler` per autoscaled group; the autoscaler feeds it one sample per tick and asks
for a `Recommendation`. Time is passed in (seconds, monotonic), so tests drive it exactly.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ScalingRules:
    target: float  # the metric's value per replica to hold
    min_replicas: int
    max_replicas: int
    stable_window: float = 60.0
    panic_window: float = 6.0
    panic_threshold: float = 2.0  # panic when the panic window asks for this many times ready
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_down_delay: float = 0.0
    idle_before_zero: float = 30.0
    metric: str = "httpRequestsConcurrency"


@dataclass(frozen=True)
class Recommendation:
    replicas: int
    reason: str
    cause: str  # stable, panic, idle (to zero), cold_start (from zero), no_data
    panicking: bool
    stable_value: float  # the metric's average over the stable window
    panic_value: float


class GroupScaler:
    """The samples and the panic state of one container group."""

    def __init__(self, rules: ScalingRules) -> None:
        self.rules = rules
        self.samples: deque[tuple[float, float]] = deque()  # (time, metric value)
        self.panic_since: float | None = None  # when the panic threshold was last crossed
        self.panic_peak = 0
        self.recent: deque[tuple[float, int]] = deque()  # (time, recommendation) for the delay
        self.first_seen: float | None = None
        self.last_active: float | None = None  # when a sample last saw any load

    def observe(self, now: float, value: float) -> None:
        self.samples.append((now, value))
        if self.first_seen is None:
            self.first_seen = now
        if value > 0:
            self.last_active = now
        horizon = now - max(self.rules.stable_window, self.rules.panic_window)
        while self.samples and self.samples[0][0] <= horizon:
            self.samples.popleft()

    def recommend(self, now: float, *, ready: int, current: int) -> Recommendation:
        """The count to run now, given `ready` replicas and the `current` desired count."""
        rules = self.rules
        stable = _average(self.samples, now - rules.stable_window)
        panic = _average(self.samples, now - rules.panic_window)
        if stable is None or panic is None:
            return Recommendation(current, "no measurements yet", "no_data", False, 0.0, 0.0)
        # With no replica ready yet, the bounds count one (as Knative does).
        base = max(ready, 1)
        up_bound = math.ceil(rules.max_scale_up_rate * base)
        down_bound = math.floor(base / rules.max_scale_down_rate)
        want_stable = _clamp(math.ceil(stable / rules.target), down_bound, up_bound)
        want_panic = _clamp(math.ceil(panic / rules.target), down_bound, up_bound)

        # Panic while the panic window asks for panic_threshold times the ready replicas, and
        # a whole stable window after it last did; while panicking, never scale down.
        if want_panic / base >= rules.panic_threshold:
            self.panic_since = now  # the last time the threshold was crossed
        elif self.panic_since is not None and now - self.panic_since > rules.stable_window:
            self.panic_since, self.panic_peak = None, 0

        unit = "% CPU" if rules.metric == "cpuAverageUtilization" else " calls in flight"
        if self.panic_since is not None:
            self.panic_peak = max(self.panic_peak, want_panic)
            wanted, cause = self.panic_peak, "panic"
            reason = (
                f"panic: {panic:.2f}{unit} over the last {rules.panic_window:g} s, "
                f"target {rules.target:g} per replica, {ready} ready"
            )
        else:
            wanted, cause = want_stable, "stable"
            reason = (
                f"{stable:.2f}{unit} on average over {rules.stable_window:g} s, "
                f"target {rules.target:g} per replica"
            )

        wanted = self._delayed(now, wanted)
        if wanted == 0 and current > 0:  # at zero already, no call: stay (a new decider too)
            idle_since = self.last_active if self.last_active is not None else self.first_seen
            if idle_since is None or now - idle_since < rules.idle_before_zero:
                wanted = 1  # not idle long enough to go to zero
            else:
                reason = f"no calls for {rules.idle_before_zero:g} s: scale to zero"
                cause = "idle"
        if current == 0 and self.samples and self.samples[-1][1] > 0:
            # Calls are held at zero: start as many replicas as they need now, at least one.
            latest = self.samples[-1][1]
            wanted = max(wanted, math.ceil(latest / rules.target))
        if current == 0 and wanted > 0:
            reason = f"calls waiting at zero replicas ({panic:.2f}{unit})"
            cause = "cold_start"
        wanted = _clamp(wanted, rules.min_replicas, rules.max_replicas)
        return Recommendation(wanted, reason, cause, self.panic_since is not None, stable, panic)

    def _delayed(self, now: float, wanted: int) -> int:
        """The highest recommendation within the scale-down delay."""
        delay = self.rules.scale_down_delay
        if delay <= 0:
            return wanted
        recent = self.recent
        recent.append((now, wanted))
        while recent and recent[0][0] <= now - delay:
            recent.popleft()
        return max(count for _, count in recent)


def _average(samples: deque[tuple[float, float]], since: float) -> float | None:
    values = [value for at, value in samples if at > since]
    return sum(values) / len(values) if values else None


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(value, high))
