"""The pipeline's order and clock policy (docs/time.md), in process: what the daemon does
with late samples, clocks stepped back or jumping ahead, and evicted patients' alerts."""

from __future__ import annotations

from monitor.core.alerts import AlertEvent
from monitor.core.windows import RELEARN_SAMPLES
from monitor.engine.pipeline import Pipeline
from tests.reliability.conftest import WINDOW, payload
from tests.reliability.inprocess import counter, make_pipeline, persistence_predictions
from tests.support.ingest import ingest_one

T0 = 1_764_000_000.0


def step(p: Pipeline, pid: str, seq: int, t: float, now: float) -> list[AlertEvent]:
    """Ingest one sample, score what is queued, run housekeeping at `now`."""
    events = ingest_one(p, f"vitals/{pid}", payload(pid, seq, t=t), now)
    jobs = p.drain_all()
    if jobs:
        events += p.score(jobs, persistence_predictions(jobs), now, live=False)
    return events + p.housekeeping(now)


def states(events: list[AlertEvent], reason: str) -> list[str]:
    return [e.state for e in events if e.reason == reason]


def test_a_late_sample_does_not_clear_signal_lost() -> None:
    """'signal lost' stays raised while only late samples arrive (a late sample is not the
    data coming back): no raise/clear flapping."""
    p = make_pipeline(model_window=WINDOW, window={"stale_after_s": 2.0})
    events: list[AlertEvent] = []
    for seq in range(20):
        events += step(p, "a", seq, T0 + seq, T0 + seq)
    for k in range(10):  # silent, then old samples redelivered each second
        now = T0 + 25 + k
        events += step(p, "a", k, T0 + k, now)
    assert states(events, "signal_lost") == ["raised"]
    assert counter(p, "monitor_messages_total", outcome="late") == 10


def test_a_clock_corrected_one_hour_back_is_monitored_again_after_one_warm_up() -> None:
    """The device clock steps back one hour while seq goes on: its samples are accepted
    (the window restarts once) and scored after one warm-up, not `late` for an hour."""
    p = make_pipeline(model_window=WINDOW)
    for seq in range(20):
        step(p, "a", seq, T0 + seq, T0 + seq)
    scored = counter(p, "monitor_messages_total", outcome="scored")
    for seq in range(20, 40):
        step(p, "a", seq, T0 + seq - 3600, T0 + seq)
    assert counter(p, "monitor_messages_total", outcome="late") == 0
    assert counter(p, "monitor_messages_total", outcome="scored") - scored == 20 - WINDOW
    assert counter(p, "monitor_order_suspect_total", kind="clock_back") == 1
    assert counter(p, "monitor_sequence_gaps_total") == 0


def test_a_clock_jump_is_refused_then_learned_with_one_alert() -> None:
    """A clock jumping an hour ahead mid-stream is refused (clock_skew, one technical
    alert) until it persists for RELEARN_SAMPLES samples; then it is learned, the alert
    clears, and the device is scored again after one warm-up."""
    p = make_pipeline(model_window=WINDOW)
    for seq in range(20):
        step(p, "a", seq, T0 + seq, T0 + seq)
    events: list[AlertEvent] = []
    for seq in range(20, 50):
        events += step(p, "a", seq, T0 + seq + 3000, T0 + seq)
    assert counter(p, "monitor_invalid_messages_total", reason="clock_skew") == RELEARN_SAMPLES - 1
    assert states(events, "clock_skew") == ["raised", "cleared"]
    assert states(events, "clock_offset") == ["raised"]
    assert counter(p, "monitor_order_suspect_total", kind="clock_jump") == 1
    scored_after = 30 - (RELEARN_SAMPLES - 1) - WINDOW
    assert counter(p, "monitor_messages_total", outcome="scored") == 20 - WINDOW + scored_after


def test_an_evicted_patients_technical_alerts_expire() -> None:
    """A patient evicted after the idle TTL with 'signal lost' open: the alert ends with
    an 'expired' event, and no technical alert stays open."""
    p = make_pipeline(model_window=WINDOW, window={"stale_after_s": 2.0, "idle_ttl_s": 10.0})
    events: list[AlertEvent] = []
    for seq in range(5):
        events += step(p, "gone", seq, T0 + seq, T0 + seq)
    for k in range(5, 20):
        events += p.housekeeping(T0 + k)
    assert states(events, "signal_lost") == ["raised", "expired"]
    assert "gone" not in p.windows
    assert counter(p, "monitor_active_alerts", kind="technical") == 0


def test_an_unheld_patients_refused_message_alert_expires_when_silent() -> None:
    """An id never admitted whose message is refused as an artifact: its technical alert
    expires once the id has been silent for the staleness limit (nothing stays open)."""
    p = make_pipeline(model_window=WINDOW, window={"stale_after_s": 2.0})
    body = payload("junk1", 0, t=T0, heart_rate=0.0)
    raised = ingest_one(p, "vitals/junk1", body, T0)
    assert [(e.reason, e.state) for e in raised] == [("artifact", "raised")]
    events: list[AlertEvent] = []
    for k in range(1, 5):
        events += p.housekeeping(T0 + k)
    assert [(e.patient_id, e.reason, e.state) for e in events] == [("junk1", "artifact", "expired")]
    assert counter(p, "monitor_active_alerts", kind="technical") == 0


def test_one_outage_does_not_stretch_the_next_silences_signal_lost() -> None:
    """A 1 Hz device silent for 10 minutes (signal lost at 8 s, cleared when it is back)
    sends one sample and drops again: lost again 8 s later, not 8 x 10 minutes later (the
    limit stretched by the last interval, before). A once-a-minute stream is lost 8
    minutes into a silence after one 8-minute gap, not 64."""
    p = make_pipeline(model_window=WINDOW)
    events: list[AlertEvent] = []
    for seq in range(20):
        events += step(p, "a", seq, T0 + seq, T0 + seq)
    for now in range(20, 620):
        events += p.housekeeping(T0 + now)
    events += step(p, "a", 20, T0 + 620, T0 + 620)
    for now in range(621, 1500):
        events += p.housekeeping(T0 + now)
    lost = [(e.state, e.t - T0) for e in events if e.reason == "signal_lost"]
    assert lost == [("raised", 28.0), ("cleared", 620.0), ("raised", 629.0)]

    slow: list[AlertEvent] = []
    times = [60.0 * k for k in range(20)] + [60.0 * 19 + 480.0, 60.0 * 19 + 540.0]
    for seq, t in enumerate(times):
        slow += step(p, "m", seq, T0 + t, T0 + t)
    end = times[-1]
    for now in range(int(end) + 1, int(end) + 3600, 10):
        slow += p.housekeeping(T0 + now)
    lost = [
        (e.state, e.t - T0 - end) for e in slow if e.reason == "signal_lost" and e.patient_id == "m"
    ]
    assert lost == [("raised", 481.0)]  # 8 x 60 s, at the next pass (every 10 s from +1 s)


def test_a_restarted_window_is_a_warming_up_alert_until_it_is_scored_again() -> None:
    """A patient silent past the gap limit (35 s, `max_gap_s` 30) comes back: its window
    restarts, so `signal_lost`'s clear is joined by `warming_up` (technical, medium), open
    while the window fills and cleared at the first sample scored again, WINDOW samples
    later; the clock stepped back an hour restarts it the same way. A first admission
    raises none. Before (26c7766) the clear of `signal_lost` read as "watched again" while
    the patient went unjudged for a whole window (2 minutes with the shipped model)."""
    p = make_pipeline(model_window=WINDOW, window={"stale_after_s": 2.0, "max_gap_s": 30.0})
    events: list[AlertEvent] = []
    for seq in range(20):
        events += step(p, "a", seq, T0 + seq, T0 + seq)
    assert states(events, "warming_up") == []  # the first admission
    events += p.housekeeping(T0 + 30)  # silent: signal lost
    back = 20 + 35
    for seq in range(20, 20 + 2 * WINDOW):
        t = T0 + back + seq - 20
        scored = counter(p, "monitor_messages_total", outcome="scored")
        changes = step(p, "a", seq, t, t)
        events += changes
        now_scored = counter(p, "monitor_messages_total", outcome="scored") > scored
        assert ("cleared" in states(changes, "warming_up")) == (now_scored and seq == 20 + WINDOW)
    assert states(events, "signal_lost") == ["raised", "cleared"]
    assert states(events, "warming_up") == ["raised", "cleared"]
    raised = next(e for e in events if e.reason == "warming_up")
    assert (raised.kind, raised.severity, raised.patient_id, raised.t) == (
        "technical",
        "medium",
        "a",
        T0 + back,
    )
    clock_back = [step(p, "a", seq, T0 + seq - 3600, T0 + 100 + seq) for seq in range(40, 50)]
    assert states([e for c in clock_back for e in c], "warming_up") == ["raised", "cleared"]
