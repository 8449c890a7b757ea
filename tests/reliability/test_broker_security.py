"""Broker security: password file, ACLs and TLS with a self-signed CA (item 13)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.publisher import SyncPublisher
from tests.reliability.conftest import payload
from tests.support.daemon import Daemon
from tests.support.mosquitto import Mosquitto
from tests.support.tls import TlsFiles, make_ca_and_server

pytestmark = pytest.mark.mqtt
ACL = """\
user monitor
topic read vitals/#
topic write alerts/#
topic write alert-state/#

user device
topic write vitals/#
"""


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The broker's CA and certificate."""
    return make_ca_and_server(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles) -> Iterator[Mosquitto]:
    """Mosquitto with TLS only, no anonymous access, a password file and per-topic ACLs."""
    work = tmp_path_factory.mktemp("secure-mosquitto")
    passwords = work / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "monitor", "m-secret"], check=True
    )
    subprocess.run(["mosquitto_passwd", "-b", str(passwords), "device", "d-secret"], check=True)
    (work / "acl").write_text(ACL)
    broker = Mosquitto(
        workdir=work,
        allow_anonymous=False,
        listener_extra=(
            f"cafile {tls.ca_cert}\ncertfile {tls.server_cert}\nkeyfile {tls.server_key}"
        ),
        extra_config=f"password_file {passwords}\nacl_file {work / 'acl'}",
    )
    broker.start()
    yield broker
    broker.stop()


def daemon_for(broker: Mosquitto, model_dir: Path, ca: Path, password: str, *args: str) -> Daemon:
    """A daemon logging in as `monitor` over TLS."""
    return Daemon(
        f"mqtts://127.0.0.1:{broker.port}",
        model=model_dir,
        args=["--ca-file", str(ca), "--username", "monitor", *args],
        env={"MONITOR_BROKER__PASSWORD": password},
    )


def events_named(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    """The daemon's log events called `name`."""
    return [e for e in daemon.log_events() if e.get("event") == name]


def refusals_over_5_s(daemon: Daemon) -> list[dict[str, Any]]:
    """The 'broker_refused' events up to 5 s after the first one (waited for up to 30 s:
    on a loaded machine the first attempt may come late; fewer attempts, never more)."""
    deadline = time.monotonic() + 30.0
    while not events_named(daemon, "broker_refused") and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(5.0)
    return events_named(daemon, "broker_refused")


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_good_credentials_over_tls(
    secure_broker: Mosquitto, tls: TlsFiles, model_dir: Path, tmp_path: Path, protocol: str
) -> None:
    """User/password over verified TLS works with MQTT 5 and 3.1.1: subscribed, and a
    device's message (allowed by the ACL) is received."""
    daemon = daemon_for(secure_broker, model_dir, tls.ca_cert, "m-secret", "--protocol", protocol)
    daemon.start(tmp_path / "daemon.log")
    try:
        daemon.wait_ready()
        assert [e["protocol"] for e in events_named(daemon, "subscribed")] == [protocol]
        device = SyncPublisher(
            BrokerConfig(
                url=f"mqtts://device:d-secret@127.0.0.1:{secure_broker.port}",
                ca_file=tls.ca_cert,
            )
        )
        device.connect()
        device.publish("vitals/tls01", payload("tls01", 0), qos=1)
        device.close()
        assert daemon.wait_for("monitor_received_total", 1, timeout=60) == 1
    finally:
        assert daemon.stop() == 0


def test_wrong_password_clear_error_no_tight_loop(
    secure_broker: Mosquitto,
    tls: TlsFiles,
    model_dir: Path,
    tmp_path: Path,
    figure: Callable[[str, Any], None],
) -> None:
    """A wrong password: 'broker_refused' names the login as the cause, /readyz stays 503,
    and over the 5 s after the first refusal the daemon tries at most twice (no tight
    reconnect loop)."""
    daemon = daemon_for(secure_broker, model_dir, tls.ca_cert, "wrong")
    daemon.start(tmp_path / "daemon.log")
    try:
        refused = refusals_over_5_s(daemon)
        assert 1 <= len(refused) <= 2
        figure("wrong_password_attempts_in_5s", len(refused))
        assert "broker refused the login" in refused[0]["error"]
        assert daemon.http_status("/readyz") == 503
        assert "wrong" not in daemon.log_text()
    finally:
        assert daemon.stop() == 0


def test_untrusted_certificate_clear_tls_error(
    secure_broker: Mosquitto, model_dir: Path, tmp_path: Path, figure: Callable[[str, Any], None]
) -> None:
    """A CA that did not sign the broker's certificate: a clear TLS error (verification is
    never turned off), at most two attempts in the 5 s after the first."""
    other = make_ca_and_server(tmp_path / "other-ca", name="other-ca")
    daemon = daemon_for(secure_broker, model_dir, other.ca_cert, "m-secret")
    daemon.start(tmp_path / "daemon.log")
    try:
        refused = refusals_over_5_s(daemon)
        assert 1 <= len(refused) <= 2
        figure("untrusted_ca_attempts_in_5s", len(refused))
        assert "TLS failed" in refused[0]["error"]
        assert "certificate verify failed" in refused[0]["error"]
    finally:
        assert daemon.stop() == 0
