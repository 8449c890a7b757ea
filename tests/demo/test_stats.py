"""The summary's figures: quantiles and rates over a sliding window of metric snapshots."""

from __future__ import annotations

import io
import math
import socket

import pytest
from prometheus_client import CollectorRegistry

from monitor.core.alerts import AlertEvent, OpenAlertsMessage
from monitor.demo.broker import port_or_free
from monitor.demo.feed import AlertFeed, Seen
from monitor.demo.stats import Window, quantile, read
from monitor.demo.summary import Display, alert_line, figures_line, legend
from monitor.service.metrics import Metrics
from monitor.transports.mqtt.config import BrokerConfig


def test_quantile_interpolates_inside_the_bucket_like_promql() -> None:
    """Between two snapshots, 100 observations in (0.001, 0.01] give p50 = 0.0055."""
    old = ((0.001, 5.0), (0.01, 5.0), (math.inf, 5.0))
    new = ((0.001, 5.0), (0.01, 105.0), (math.inf, 105.0))
    assert quantile(0.5, new, old) == pytest.approx(0.0055)
    assert quantile(0.99, new, old) == pytest.approx(0.001 + 0.009 * 0.99)


def test_quantile_without_observations_is_nan_and_inf_bucket_gives_last_bound() -> None:
    """No new observation: NaN. A quantile in the +Inf bucket: the highest finite bound."""
    snap = ((0.1, 3.0), (math.inf, 3.0))
    assert math.isnan(quantile(0.5, snap, snap))
    assert quantile(0.99, ((0.1, 0.0), (math.inf, 4.0)), ()) == 0.1


def test_window_reads_rates_and_latency_from_the_daemon_metrics() -> None:
    """Two snapshots 2 s apart with 400 payloads in between give 200 messages/s."""
    metrics = Metrics.create(CollectorRegistry())
    window = Window(seconds=5.0)
    window.add(read(metrics, 10.0))
    metrics.received.inc(400)
    metrics.messages.labels("scored").inc(300)
    metrics.active_patients.set(20)
    metrics.alerts.labels("spo2", "high").inc(2)
    metrics.technical_alerts.labels("signal_lost").inc()
    for _ in range(10):
        metrics.end_to_end_latency.observe(0.003)
    f = window.add(read(metrics, 12.0))
    assert (f.patients, f.messages_per_s, f.scored_per_s) == (20, 200.0, 150.0)
    assert (f.warming_per_s, f.other_per_s) == (0.0, 0.0)
    assert (f.alerts, f.technical) == (2, 1)
    assert 0.0025 < f.e2e_p50_s <= 0.005
    assert math.isnan(f.inference_p50_s)


def test_window_forgets_snapshots_older_than_its_width() -> None:
    """After 10 s of snapshots in a 5 s window, the rate covers only the last 5 s."""
    metrics = Metrics.create(CollectorRegistry())
    window = Window(seconds=5.0)
    for second in range(11):
        metrics.received.inc(100 if second <= 5 else 300)
        f = window.add(read(metrics, float(second)))
    assert f.messages_per_s == 300.0


def test_plain_display_prints_new_alerts_then_the_figures() -> None:
    """Without a TTY a refresh is plain lines: each new alert, then one figures line."""
    metrics = Metrics.create(CollectorRegistry())
    metrics.active_patients.set(3)
    f = Window().add(read(metrics, 0.0))
    event = AlertEvent(
        kind="physiological",
        patient_id="p0007",
        vital="heart_rate",
        state="raised",
        severity="high",
        t=0.0,
        seq=1,
        z=9.25,
        model_version="v",
    )
    out = io.StringIO()
    seen = Seen(event, 112.5)
    Display(tty=False, header=[], out=out).show(12.0, f, [seen], [seen], started=100.0)
    assert out.getvalue().splitlines() == [alert_line(seen, 100.0), figures_line(12.0, f)]
    assert alert_line(seen, 100.0) == (
        "ALERT [t+12.5s] raised    high   patient=p0007 physiological=heart_rate z=+9.2"
    )
    assert "\x1b[H" not in out.getvalue()


def test_port_or_free_moves_off_a_taken_port() -> None:
    """A port something listens on is replaced by another free one; a free one is kept."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        other = port_or_free("127.0.0.1", taken)
        assert other != taken
        assert other > 0
    assert port_or_free("127.0.0.1", other) == other


def test_figures_split_received_samples_into_scored_warming_and_other() -> None:
    """400 received in 2 s: 300 scored, 80 warming up, 20 refused: 150 + 40 + 10 per s."""
    metrics = Metrics.create(CollectorRegistry())
    window = Window(seconds=5.0)
    window.add(read(metrics, 10.0))
    metrics.received.inc(400)
    metrics.messages.labels("scored").inc(300)
    metrics.messages.labels("warming_up").inc(80)
    metrics.messages.labels("invalid").inc(20)
    f = window.add(read(metrics, 12.0))
    assert (f.scored_per_s, f.warming_per_s, f.other_per_s) == (150.0, 40.0, 10.0)
    line = figures_line(17.8, f)
    assert line.startswith("[t+17.8s] patients=0 msg/s=200 (scored=150 warming_up=40 other=10)")
    assert line.endswith("raised: physiological=0 technical=0")


def test_feed_breakdown_names_what_the_alert_events_were() -> None:
    """Raises by kind, escalations and clears add up to the events received."""
    feed = AlertFeed(BrokerConfig(url="mqtt://127.0.0.1:1"))
    for kind, state in [
        ("physiological", "raised"),
        ("physiological", "escalated"),
        ("physiological", "cleared"),
        ("technical", "raised"),
        ("physiological", "raised"),
    ]:
        event = AlertEvent(
            kind=kind,  # type: ignore[arg-type]
            patient_id="p1",
            vital="spo2",
            reason="signal_lost" if kind == "technical" else "k_of_n",
            state=state,  # type: ignore[arg-type]
            severity="high",
            t=0.0,
            seq=1,
            z=None,
            model_version="v",
        )
        feed.add(event, 1.0)
    assert feed.breakdown() == (
        "5 alert events: 3 raised (2 physiological, 1 technical), 1 escalated, 1 cleared; "
        "open now: 0 alerts on 0 patients"
    )


def test_feed_counts_the_open_alerts_of_the_state_messages() -> None:
    """Each patient's state message sets its open alerts, an empty one removes them; the
    system-wide one (`monitor_offline` once the daemon stopped) is not a patient's."""
    feed = AlertFeed(BrokerConfig(url="mqtt://127.0.0.1:1"))

    def state(pid: str | None, *reasons: str) -> bytes:
        open_ = [AlertEvent.technical(pid, r, "raised", t=0.0, model_version="v") for r in reasons]
        return OpenAlertsMessage(patient_id=pid, open=open_).to_json()

    feed.state("alert-state/p1", state("p1", "signal_lost", "artifact"))
    feed.state("alert-state/p2", state("p2", "signal_lost"))
    feed.state("alert-state/_system", state(None, "monitor_offline"))
    feed.state("alert-state/p3", b"not json")  # someone else's: ignored
    assert feed.open_now() == "open now: 3 alerts on 2 patients"
    feed.state("alert-state/p1", b"")
    assert feed.open_now() == "open now: 1 alert on 1 patient"


def test_legend_explains_every_label_of_the_line() -> None:
    """The legend names t+, msg/s and its three parts, e2e, inference and raised."""
    text = " ".join(legend(120))
    for label in ("t+S", "msg/s", "warming", "first 120 samples", "other", "e2e", "raised"):
        assert label in text
