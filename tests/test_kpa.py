"""The autoscaler's decisions (services/kpa.py), driven sample by sample with exact times."""

from __future__ import annotations

from services.kpa import GroupScaler, Recommendation, ScalingRules

RULES = ScalingRules(
    target=2,
    min_replicas=1,
    max_replicas=10,
    stable_window=60,
    panic_window=6,
    idle_before_zero=30,
)


def feed(
    scaler: GroupScaler, start: float, seconds: int, value: float, ready: int, current: int
) -> Recommendation:
    """One sample a second for `seconds`, then the recommendation at the last one."""
    for t in range(seconds):
        scaler.observe(start + t, value)
    return scaler.recommend(start + seconds - 1, ready=ready, current=current)


def test_no_measurements_keeps_the_current_count() -> None:
    scaler = GroupScaler(RULES)
    found = scaler.recommend(0, ready=2, current=2)
    assert found.replicas == 2 and found.reason == "no measurements yet"


def test_steady_load_asks_for_load_over_target_rounded_up() -> None:
    scaler = GroupScaler(RULES)
    found = feed(scaler, 0, 60, 5, ready=3, current=3)
    assert found.replicas == 3  # ceil(5 / 2)
    assert not found.panicking
    assert "5.00 calls in flight on average over 60 s" in found.reason


def test_bounds_clamp_the_count() -> None:
    assert feed(GroupScaler(RULES), 0, 60, 100, ready=10, current=10).replicas == 10
    assert feed(GroupScaler(RULES), 0, 60, 0.1, ready=1, current=1).replicas == 1


def test_a_burst_panics_and_scales_on_the_panic_window() -> None:
    scaler = GroupScaler(RULES)
    feed(scaler, 0, 60, 2, ready=1, current=1)  # one replica's worth
    burst = feed(scaler, 60, 3, 12, ready=1, current=1)
    # The stable window still averages about 2.5; the panic window sees the burst.
    assert burst.panicking
    assert burst.replicas == 4  # panic window: (3 * 2 + 3 * 12) / 6 = 7 in flight, target 2
    assert burst.stable_value == 2.5  # the stable window alone would ask for 2
    assert burst.reason.startswith("panic:")


def test_panic_never_scales_down_until_a_stable_window_after_the_burst() -> None:
    scaler = GroupScaler(RULES)
    feed(scaler, 0, 6, 12, ready=1, current=1)
    peak = scaler.recommend(5, ready=1, current=1)
    assert peak.panicking and peak.replicas == 6
    # The burst is over: the panic window goes quiet, the count holds while panicking.
    quiet = feed(scaler, 6, 30, 0.5, ready=6, current=6)
    assert quiet.panicking and quiet.replicas == 6
    # A whole stable window after the threshold was last crossed, panic ends.
    later = feed(scaler, 36, 60, 0.5, ready=6, current=6)
    assert not later.panicking
    assert later.replicas == 3  # the scale-down rate: at most half of the 6 ready go at once


def test_scale_up_rate_bounds_a_step() -> None:
    rules = ScalingRules(target=1, min_replicas=1, max_replicas=50, max_scale_up_rate=2)
    found = feed(GroupScaler(rules), 0, 60, 40, ready=2, current=2)
    assert found.replicas == 4  # 2 ready * rate 2


def test_scale_down_rate_bounds_a_step() -> None:
    found = feed(GroupScaler(RULES), 0, 60, 0.5, ready=8, current=8)
    assert found.replicas == 4  # 8 ready / rate 2


def test_scale_down_delay_keeps_the_highest_recent_recommendation() -> None:
    rules = ScalingRules(target=1, min_replicas=1, max_replicas=10, scale_down_delay=20)
    scaler = GroupScaler(rules)
    for t in range(60):
        scaler.observe(t, 4)
        scaler.recommend(t, ready=4, current=4)
    # Load drops: the stable average falls, but for 20 s the recommendation holds at 4.
    held = None
    for t in range(60, 75):
        scaler.observe(t, 0.2)
        held = scaler.recommend(t, ready=4, current=4)
    assert held is not None and held.replicas == 4
    for t in range(75, 200):
        scaler.observe(t, 0.2)
        held = scaler.recommend(t, ready=held.replicas, current=held.replicas)
    assert held.replicas == 1


ZERO = ScalingRules(
    target=2, min_replicas=0, max_replicas=5, stable_window=10, panic_window=2, idle_before_zero=20
)


def test_scale_to_zero_only_after_the_idle_window() -> None:
    scaler = GroupScaler(ZERO)
    busy = feed(scaler, 0, 10, 1, ready=1, current=1)
    assert busy.replicas == 1
    # Idle, but not for 20 s yet: one replica stays, even once the averages reach zero.
    early = feed(scaler, 10, 15, 0, ready=1, current=1)
    assert early.replicas == 1
    late = feed(scaler, 25, 10, 0, ready=1, current=1)
    assert late.replicas == 0
    assert "no calls for 20 s" in late.reason


def test_a_fresh_scaler_waits_the_idle_window_before_zero() -> None:
    scaler = GroupScaler(ZERO)
    assert feed(scaler, 0, 19, 0, ready=1, current=1).replicas == 1
    assert feed(scaler, 19, 5, 0, ready=1, current=1).replicas == 0


def test_a_call_at_zero_asks_for_a_replica_at_once() -> None:
    scaler = GroupScaler(ZERO)
    feed(scaler, 0, 40, 0, ready=0, current=0)
    scaler.observe(40, 1)  # one held call
    found = scaler.recommend(40, ready=0, current=0)
    assert found.replicas == 1
    assert found.reason.startswith("calls waiting at zero replicas")


def test_many_calls_at_zero_ask_for_as_many_replicas_as_the_target_needs() -> None:
    scaler = GroupScaler(ZERO)
    feed(scaler, 0, 40, 0, ready=0, current=0)
    scaler.observe(40, 10)  # ten held calls, target 2 each
    assert scaler.recommend(40, ready=0, current=0).replicas == 5


def test_at_zero_with_no_calls_stays_at_zero() -> None:
    scaler = GroupScaler(ZERO)
    assert feed(scaler, 0, 40, 0, ready=0, current=0).replicas == 0


def test_a_new_decider_leaves_a_group_at_zero_at_zero() -> None:
    """A fresh scaler (another API process took over deciding) has seen no idle window, but
    a group already at zero with no call waiting has nothing to start."""
    scaler = GroupScaler(ZERO)
    assert feed(scaler, 0, 1, 0, ready=0, current=0).replicas == 0


def test_the_minimum_holds_even_when_idle() -> None:
    rules = ScalingRules(target=2, min_replicas=2, max_replicas=5, idle_before_zero=1)
    assert feed(GroupScaler(rules), 0, 120, 0, ready=2, current=2).replicas == 2


def test_old_samples_leave_the_windows() -> None:
    scaler = GroupScaler(RULES)
    feed(scaler, 0, 60, 10, ready=5, current=5)
    assert len(scaler.samples) == 60
    feed(scaler, 60, 60, 2, ready=5, current=5)
    assert len(scaler.samples) == 60
    assert all(at >= 60 for at, _ in scaler.samples)


def test_cpu_reasons_name_the_unit() -> None:
    rules = ScalingRules(target=50, min_replicas=1, max_replicas=4, metric="cpuAverageUtilization")
    found = feed(GroupScaler(rules), 0, 60, 120, ready=1, current=1)
    assert found.replicas == 3  # ceil(120 / 50)
    assert "% CPU" in found.reason
