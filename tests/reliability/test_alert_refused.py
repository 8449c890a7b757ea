"""A broker that refuses the daemon's alerts (an ACL without write access to `alerts/#`):
no alert may be taken for delivered when it was dropped."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.publisher import SyncPublisher
from tests.reliability.conftest import payload
from tests.support.daemon import Daemon, eventually, total
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt

#: Anonymous clients (the devices, the listener) first; then the daemon's account, which
#: may read the vitals but, by an operator's mistake, not write the alerts.
ACL = """\
topic write vitals/#
topic read alerts/#

user monitor
topic read vitals/#
topic write alert-state/#
"""


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """Mosquitto with a password for the daemon's account and the ACL above."""
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "monitor", "m-secret"], check=True
    )
    passwords.chmod(0o600)
    (tmp_path / "acl").write_text(ACL)
    broker = Mosquitto(
        workdir=tmp_path / "mq",
        extra_config=f"password_file {passwords}\nacl_file {tmp_path / 'acl'}",
    )
    broker.start()
    yield broker
    broker.stop()


def held_back(
    daemon: Daemon, url: str, pid: str, reason: str, undeliverable: int = 1
) -> SyncPublisher:
    """A device sends `pid` an impossible heart rate; wait until its `artifact` alert is
    held back: undeliverable (with its state message where that fails too), counted under
    `reason`, /readyz 503. Returns the device."""
    device = SyncPublisher(BrokerConfig(url=url))
    device.connect()
    device.publish(f"vitals/{pid}", payload(pid, 0, heart_rate=400.0), qos=1)
    assert eventually(
        lambda: total(daemon.metrics(), "monitor_alerts_undeliverable") == undeliverable
    )
    assert total(daemon.metrics(), "monitor_alerts_refused_total", reason=reason) >= 1
    assert eventually(lambda: daemon.http_status("/readyz") == 503)
    return device


@pytest.mark.parametrize("protocol", ["auto", "5"])
def test_alerts_the_broker_refuses_are_kept_retried_and_make_the_daemon_not_ready(
    acl_broker: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
    protocol: str,
) -> None:
    """With `broker.protocol` auto (the default: the vitals on MQTT 3.1.1, the alerts on a
    connection of their own, MQTT 5) or 5: a device's impossible heart rate raises an
    `artifact` alert that the broker refuses ("Not authorized"). The daemon counts it,
    logs `alert_refused`, keeps it (`monitor_alerts_undeliverable` 1) and answers /readyz
    with 503. Once the operator grants the write and Mosquitto reloads its ACL (SIGHUP),
    the alert is delivered on its next try, the gauge falls to 0 and /readyz answers 200.
    Before, the refusal read as an acknowledgement: the alert was deleted from the outbox,
    lost, and the daemon stayed ready; under `auto` (3.1.1 then) it still did until
    2026-12-07."""
    daemon = Daemon(
        acl_broker.url,
        model=model_dir,
        args=["--username", "monitor"],
        # Not 3.1.1: a 3.1.1 broker acknowledges what its ACL drops, and nothing can tell.
        env={"MONITOR_BROKER__PASSWORD": "m-secret", "MONITOR_BROKER__PROTOCOL": protocol},
    )
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    subscribed = [e for e in daemon.log_events() if e.get("event") == "subscribed"]
    assert (subscribed[0]["protocol"], subscribed[0]["alerts_protocol"]) == (
        "3.1.1" if protocol == "auto" else "5",
        "5",
    )
    alerts = listener_factory(acl_broker.port)
    device = held_back(daemon, acl_broker.url, "ar1", "not_authorized")
    refused: list[dict[str, Any]] = [
        e for e in daemon.log_events() if e.get("event") == "alert_refused"
    ]
    assert refused
    assert refused[0]["reason"] == "not_authorized"
    assert "ar1" not in daemon.log_text()  # ids never reach a log line
    assert alerts.events() == []
    (acl_broker.workdir.parent / "acl").write_text(ACL + "topic write alerts/#\n")
    assert acl_broker.proc is not None
    acl_broker.proc.send_signal(signal.SIGHUP)
    # Offered again at most 60 s after its last refusal (1, 2, 4, ... s so far).
    assert eventually(lambda: any(e.get("patient_id") == "ar1" for e in alerts.events()), 70.0)
    artifact = alerts.events()[0]  # its `expired` may follow (never admitted, 8 s silent)
    assert (artifact["reason"], artifact["vital"], artifact["state"]) == (
        "artifact",
        "heart_rate",
        "raised",
    )
    assert eventually(lambda: total(daemon.metrics(), "monitor_alerts_undeliverable") == 0)
    assert eventually(lambda: daemon.http_status("/readyz") == 200)
    device.close()
    assert daemon.stop() == 0


def test_an_alert_whose_publication_raises_is_kept_retried_and_the_publisher_goes_on(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """Every alert publication raises in the client while a flag file exists (a fault of
    the client library; test hook, tests/support/slowed_run.py). A device's impossible
    heart rate raises an `artifact` alert: it is kept, counted
    (`monitor_alerts_refused_total{reason="client_error"}`), logged `alert_publish_failed`
    with the error, and /readyz answers 503. The flag removed, it is delivered on its next
    try, and so is an alert decided after it. Before (26c7766) the exception ended the
    publisher task: no alert was published again until a restart, and the daemon stayed
    ready."""
    flag = tmp_path / "fail-alerts"
    states = listener_factory(mosquitto.port, "alert-state/#")
    daemon = Daemon(mosquitto.url, model=model_dir, fail_alerts_while=flag)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    # The connection's system-wide state message out first (docs/alerts.md, "Open alerts"),
    # then every publication fails.
    assert eventually(lambda: bool(states.messages))
    flag.touch()
    alerts = listener_factory(mosquitto.port)
    # The alert and then the patient's state message (docs/alerts.md, "Open alerts").
    device = held_back(daemon, mosquitto.url, "pf1", "client_error", undeliverable=2)
    failed = [e for e in daemon.log_events() if e.get("event") == "alert_publish_failed"]
    assert failed
    assert (failed[0]["reason"], failed[0]["error"]) == (
        "client_error",
        "InjectedFault: injected alert publication failure (test)",
    )
    assert "pf1" not in daemon.log_text()  # ids never reach a log line
    assert alerts.events() == []
    flag.unlink()

    def delivered(pid: str) -> bool:
        return any(e.get("patient_id") == pid for e in alerts.events())

    # Offered again at most 60 s after its last failure (1, 2, 4, ... s so far).
    assert eventually(lambda: delivered("pf1"), 70.0)
    first = alerts.events()[0]
    assert (first["reason"], first["vital"], first["state"]) == ("artifact", "heart_rate", "raised")
    device.publish("vitals/pf2", payload("pf2", 0, heart_rate=400.0), qos=1)
    assert eventually(lambda: delivered("pf2"))
    # The state messages are offered again at most 60 s after their last failure too.
    assert eventually(lambda: total(daemon.metrics(), "monitor_alerts_undeliverable") == 0, 70.0)
    assert eventually(lambda: daemon.http_status("/readyz") == 200)
    device.close()
    assert daemon.stop() == 0
