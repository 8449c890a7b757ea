"""The open alerts (`service.ledger`): followed from the decided events, kept in the outbox
file, published per patient as a retained state message, and ended (`expired`) where the
engine no longer holds them (docs/alerts.md, "Open alerts")."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import cast

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from monitor.core.alerts import AlertEvent
from monitor.engine.transport import AlertPublisher, PublishRefused
from monitor.service.alerting import AlertSink
from monitor.service.ledger import OpenAlerts
from monitor.service.metrics import Metrics
from monitor.service.outbox import Outbox
from tests.service.test_pipeline import T0, feed, make, score_all


def technical(pid: str | None, reason: str, state: str, t: float = 1000.0) -> AlertEvent:
    return AlertEvent.technical(pid, reason, state, t=t, model_version="m")  # type: ignore[arg-type]


def episode(
    pid: str, vital: str, state: str, severity: str = "medium", t: float = 1.0
) -> AlertEvent:
    return AlertEvent(
        kind="physiological",
        patient_id=pid,
        vital=vital,
        state=state,  # type: ignore[arg-type]
        severity=severity,  # type: ignore[arg-type]
        t=t,
        seq=int(t),
        actual=1.0,
        predicted=0.0,
        z=5.0,
        threshold=4.0,
        model_version="m",
        reason="k_of_n",
    )


def open_reasons(state: bytes) -> list[tuple[str, str | None, str | None, str]]:
    body = json.loads(state)
    return [(a["kind"], a["vital"], a["reason"], a["state"]) for a in body["open"]]


def test_the_ledger_follows_raises_escalations_and_ends() -> None:
    """A raise opens an alert, an escalation updates it, a clear or an expiry ends it;
    a technical alert is its reason and vital, a physiological one its vital's episode."""
    ledger = OpenAlerts()
    ledger.apply(
        [
            episode("p1", "heart_rate", "raised"),
            technical("p1", "signal_lost", "raised"),
            technical("p1", "artifact", "raised"),
            technical(None, "inference_failed", "raised"),
        ]
    )
    assert open_reasons(ledger.state("p1")) == [
        ("physiological", "heart_rate", "k_of_n", "raised"),
        ("technical", None, "artifact", "raised"),
        ("technical", None, "signal_lost", "raised"),
    ]
    ledger.apply([episode("p1", "heart_rate", "escalated", "high", t=2.0)])
    body = json.loads(ledger.state("p1"))
    assert (body["v"], body["patient_id"]) == (1, "p1")
    first = body["open"][0]
    assert (first["vital"], first["state"], first["severity"]) == (
        "heart_rate",
        "escalated",
        "high",
    )
    changes = ledger.apply(
        [
            episode("p1", "heart_rate", "cleared", "high", t=3.0),
            technical("p1", "signal_lost", "cleared"),
            technical("p1", "artifact", "expired"),
            technical("p2", "signal_lost", "cleared"),  # never open here: no change
        ]
    )
    assert [(pid, key, event) for pid, key, event in changes] == [
        ("p1", "physiological|heart_rate|", None),
        ("p1", "technical||signal_lost", None),
        ("p1", "technical||artifact", None),
    ]
    assert ledger.state("p1") == b""  # an empty retained message deletes the kept one
    assert ledger.patients() == [None]
    assert open_reasons(ledger.state(None)) == [("technical", None, "inference_failed", "raised")]


def test_orphans_are_the_open_alerts_the_engine_does_not_hold() -> None:
    """Each open alert `holds` rejects gets an `expired` event with its kind, vital,
    reason and severity, at `now`, with the current model version."""
    ledger = OpenAlerts()
    ledger.apply(
        [
            episode("p1", "spo2", "raised", "high"),
            technical("p1", "signal_lost", "raised"),
            technical("p2", "flatline", "raised"),
        ]
    )
    held = {("p2", "flatline")}
    orphans = ledger.orphans(lambda e: (e.patient_id, e.reason) in held, 5000.0, "m2")
    assert [
        (e.kind, e.patient_id, e.vital, e.reason, e.state, e.severity, e.t, e.model_version)
        for e in orphans
    ] == [
        ("physiological", "p1", "spo2", "k_of_n", "expired", "high", 5000.0, "m2"),
        ("technical", "p1", None, "signal_lost", "expired", "high", 5000.0, "m2"),
    ]
    ledger.apply(orphans)
    assert ledger.patients() == ["p2"]


def test_an_evicted_patient_s_open_episode_is_an_orphan_of_the_pipeline() -> None:
    """The pipeline holds a raised physiological episode; once the patient is evicted
    (idle past `idle_ttl_s`) it holds none, and the ledger's sweep ends it. Before
    (ba68fe7) an eviction ended the patient's technical alerts only: the episode stayed
    open at its consumers forever."""
    p = make(window={"idle_ttl_s": 60.0, "stale_after_s": 5.0})
    ledger = OpenAlerts()
    feed(p, "d", [70.0, 70.2, 69.9, 70.1, 70.0])
    ledger.apply(score_all(p))
    feed(p, "d", [100.0], start=5)
    raised = score_all(p)
    ledger.apply(raised)
    (up,) = [e for e in raised if e.kind == "physiological"]
    assert p.holds(up)
    assert ledger.orphans(p.holds, T0 + 10, "v-test") == []
    ledger.apply(p.housekeeping(T0 + 30))  # silent: signal_lost, held
    ledger.apply(p.housekeeping(T0 + 100))  # evicted: its signal_lost expired
    assert not p.holds(up)
    orphans = ledger.orphans(p.holds, T0 + 100, "v-test")
    assert [(e.kind, e.vital, e.state) for e in orphans] == [
        ("physiological", "heart_rate", "expired")
    ]


class Recorder:
    """A connection that acknowledges everything (or refuses retained messages)."""

    def __init__(self, refuse_retained: bool = False) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []
        self.refuse_retained = refuse_retained

    async def publish(self, address: str, payload: bytes, retain: bool = False) -> bool:
        if retain and self.refuse_retained:
            raise PublishRefused("not_authorized", "Not authorized")
        self.sent.append((address, payload, retain))
        return True


def state_sink(outbox: Outbox | None = None, max_pending: int = 100) -> tuple[AlertSink, Metrics]:
    metrics = Metrics.create(CollectorRegistry())
    sink = AlertSink(
        metrics,
        address=lambda pid: f"alerts/{pid or '_system'}",
        max_pending=max_pending,
        outbox=outbox,
        state_address=lambda pid: f"alert-state/{pid or '_system'}",
    )
    return sink, metrics


def run_until_idle(sink: AlertSink, conn: Recorder, steps: list[list[AlertEvent]]) -> None:
    async def scenario() -> None:
        connected = asyncio.Event()
        connected.set()
        task = asyncio.create_task(sink.run(lambda: cast(AlertPublisher, conn), connected))
        for events in steps:
            sink.publish(events)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(sink._idle.wait(), 2.0)
        task.cancel()

    asyncio.run(scenario())


def test_state_messages_are_retained_after_the_alerts_and_show_the_latest_state() -> None:
    """Alerts go out first, then each changed patient's state message, retained, read
    when it goes out: a raise and its clear decided together give one empty message."""
    sink, _ = state_sink()
    conn = Recorder()
    run_until_idle(
        sink,
        conn,
        [
            [technical("p1", "signal_lost", "raised"), technical("p2", "signal_lost", "raised")],
            [technical("p2", "signal_lost", "cleared")],
        ],
    )
    alerts = [(a, json.loads(p)["state"]) for a, p, r in conn.sent if not r]
    assert alerts == [
        ("alerts/p1", "raised"),
        ("alerts/p2", "raised"),
        ("alerts/p2", "cleared"),
    ]
    states = {a: p for a, p, r in conn.sent if r}
    assert open_reasons(states["alert-state/p1"]) == [("technical", None, "signal_lost", "raised")]
    assert states["alert-state/p2"] == b""
    # Every delivered state message is the one of its time; the last is the current one.
    last = [(a, p) for a, p, r in conn.sent if r][-1]
    assert last == ("alert-state/p2", b"")


def test_a_new_connection_publishes_every_state_again() -> None:
    """A broker restarted without persistence lost the retained messages: `resync` (each
    new connection) publishes the state of every patient with an open alert."""
    sink, _ = state_sink()
    conn = Recorder()
    run_until_idle(sink, conn, [[technical("p1", "signal_lost", "raised")]])
    again = Recorder()
    sink.resync()
    run_until_idle(sink, again, [])
    # The system-wide one too, always: it replaces a `monitor_offline` (here: none open).
    assert [(a, p, r) for a, p, r in again.sent if a != "alert-state/p1"] == [
        ("alert-state/_system", b"", True)
    ]
    assert [(a, r) for a, _, r in again.sent if a == "alert-state/p1"] == [("alert-state/p1", True)]


def test_a_refused_state_message_makes_the_daemon_not_ready_until_delivered() -> None:
    """An ACL without write access to the state topics: counted, logged, not ready
    (`refusing`, `monitor_alerts_undeliverable`), offered again later; the alerts go on."""
    sink, metrics = state_sink()
    conn = Recorder(refuse_retained=True)

    async def scenario() -> None:
        connected = asyncio.Event()
        connected.set()
        task = asyncio.create_task(sink.run(lambda: cast(AlertPublisher, conn), connected))
        sink.publish([technical("p1", "signal_lost", "raised")])
        await asyncio.sleep(0.3)
        assert sink.refusing
        assert metrics.registry.get_sample_value("monitor_alerts_undeliverable") == 1
        conn.refuse_retained = False  # access granted: delivered at its next try (1 s)
        for _ in range(40):
            if not sink.refusing:
                break
            await asyncio.sleep(0.1)
        task.cancel()

    with capture_logs() as logs:
        asyncio.run(scenario())
    assert not sink.refusing
    assert [a for a, _, r in conn.sent if not r] == ["alerts/p1"]
    assert [a for a, _, r in conn.sent if r] == ["alert-state/p1"]
    refused = [e for e in logs if e["event"] == "alert_state_refused"]
    assert [(e["reason"], e["broker_said"]) for e in refused] == [
        ("not_authorized", "Not authorized")
    ]
    assert (
        metrics.registry.get_sample_value(
            "monitor_alerts_refused_total", {"reason": "not_authorized"}
        )
        == 1
    )


def test_the_outbox_keeps_the_open_alerts_across_a_restart(tmp_path: Path) -> None:
    """The ledger's changes are written with the alerts; the next run's sink takes them
    (`attach`), so it knows what its consumers were shown open."""
    path = tmp_path / "outbox.sqlite3"
    sink, _ = state_sink(Outbox(path))
    sink.publish(
        [
            technical("p1", "signal_lost", "raised"),
            episode("p2", "spo2", "raised"),
            technical("p3", "artifact", "raised"),
        ]
    )
    sink.publish([technical("p3", "artifact", "cleared")])
    sink.account_shutdown()

    again, _ = state_sink()
    assert again.attach(Outbox(path)) == 4  # the undelivered alerts, as before
    assert again.ledger.patients() == ["p1", "p2"]
    assert open_reasons(again.ledger.state("p2")) == [("physiological", "spo2", "k_of_n", "raised")]


def test_alerts_dropped_at_the_bound_still_show_in_the_state_messages() -> None:
    """Past `alerts.max_pending` the oldest physiological alert is dropped (counted); the
    open alerts follow every decided event, so each patient's state message still shows
    its alert."""
    sink, metrics = state_sink(max_pending=1)
    sink.publish([episode(f"p{i}", "spo2", "raised", t=float(i)) for i in range(3)])
    assert (
        metrics.registry.get_sample_value(
            "monitor_dropped_messages_total", {"reason": "alert_queue_full"}
        )
        == 2
    )
    conn = Recorder()
    run_until_idle(sink, conn, [])
    assert [a for a, _, r in conn.sent if not r] == ["alerts/p2"]
    states = {a: open_reasons(p) for a, p, r in conn.sent if r}
    assert states == {
        f"alert-state/p{i}": [("physiological", "spo2", "k_of_n", "raised")] for i in range(3)
    }


def test_a_graceful_stop_says_monitoring_is_offline_until_the_next_connection() -> None:
    """`going_offline` publishes the given system-wide state message after what is queued;
    the next connection's `resync` replaces it with the system's own state."""
    sink, _ = state_sink()
    conn = Recorder()
    sink.going_offline(b"offline")
    run_until_idle(sink, conn, [[technical("p1", "signal_lost", "raised")]])
    assert [a for a, _, r in conn.sent if not r] == ["alerts/p1"]
    assert ("alert-state/_system", b"offline", True) in conn.sent
    sink.resync()
    again = Recorder()
    run_until_idle(sink, again, [])
    assert ("alert-state/_system", b"", True) in again.sent


def test_an_unreadable_open_alert_in_the_outbox_is_skipped_with_one_line(tmp_path: Path) -> None:
    """A damaged row (another version's, a flipped byte) never stops a start: it is
    skipped and counted in one `open_alerts_unreadable` line; the others are taken."""
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path)
    outbox.add(
        (), [("p1", "technical||signal_lost", technical("p1", "signal_lost", "raised").to_json())]
    )
    outbox.add((), [("p2", "technical||signal_lost", b'{"not": "an alert"}')])
    outbox.close()
    again, _ = state_sink()
    with capture_logs() as logs:
        again.attach(Outbox(path))
    assert [e["count"] for e in logs if e["event"] == "open_alerts_unreadable"] == [1]
    assert again.ledger.patients() == ["p1"]
