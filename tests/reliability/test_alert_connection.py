"""The alerts' own connection (`broker.protocol` auto: the vitals on MQTT 3.1.1, the alerts
on MQTT 5): losing it ends both connections and both are made again, nothing lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from tests.reliability.conftest import WINDOW, Feed, outcomes_balance
from tests.support.daemon import Daemon, eventually, total
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt


def test_the_alert_connection_lost_reconnects_both_and_alerts_go_out(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """Client id `mon`: the vitals' connection is `mon`, the alerts' `mon-alerts` (MQTT 5).
    Another client connecting as `mon-alerts` takes the session over, and the broker drops
    the daemon's alert connection: the daemon logs `broker_connection_lost`, makes both
    connections again (a second `subscribed`), is ready again, scores the vitals sent
    meanwhile, and an alert decided after it is delivered."""
    daemon = Daemon(mosquitto.url, model=model_dir, env={"MONITOR_BROKER__CLIENT_ID": "mon"})
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    alerts = listener_factory(mosquitto.port)
    device = Feed(mosquitto.url, "ac", patients=1, qos=1, pause_s=0.05)  # ac0

    def subscribed() -> list[tuple[object, object]]:
        return [
            (e["protocol"], e["alerts_protocol"])
            for e in daemon.log_events()
            if e.get("event") == "subscribed"
        ]

    device.send(WINDOW + 2)
    daemon.wait_for("monitor_messages_total", 2, outcome="scored")
    assert subscribed() == [("3.1.1", "5")]
    intruder = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id="mon-alerts", protocol=paho.MQTTv5
    )
    intruder.connect("127.0.0.1", mosquitto.port)  # sends CONNECT; no loop: no reconnect
    assert eventually(lambda: len(subscribed()) == 2, timeout=20)
    intruder.disconnect()  # taken over in turn by the daemon's new alerts' connection
    lost = [e for e in daemon.log_events() if e.get("event") == "broker_connection_lost"]
    assert lost
    assert lost[0]["error"] == "connection lost (alerts)"
    assert eventually(lambda: daemon.http_status("/readyz") == 200)
    device.send(4)
    device.send(1, heart_rate=400.0)
    assert eventually(
        lambda: any(
            (e.get("patient_id"), e.get("reason")) == ("ac0", "artifact") for e in alerts.events()
        )
    )
    device.close()
    assert total(daemon.metrics(), "monitor_alerts_undeliverable") == 0
    assert eventually(lambda: len(set(outcomes_balance(daemon.metrics()))) == 1)
    assert total(daemon.metrics(), "monitor_received_total") == device.sent
    assert daemon.stop() == 0
