"""A vital that stops arriving while the patient's others go on: `vital_lost` on the
patient's alert topic, through a real Mosquitto and the daemon (docs/detection.md, "Lost
vitals")."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from monitor.core.vitals import CLINICAL_VITALS
from monitor.model.lstm import MedicalLSTM
from monitor.model.store import save_model
from tests.reliability.conftest import NORMAL, make_card
from tests.reliability.test_delivery import publish_all, wait_until
from tests.support.daemon import Daemon, total
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt


@pytest.fixture(scope="module")
def masked_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's small random model, with an observed mask (as the shipped one has)."""
    torch.manual_seed(0)
    n = len(CLINICAL_VITALS)
    card = make_card()
    card = card.model_copy(
        update={
            "observed_mask": True,
            "hyperparameters": card.hyperparameters.model_copy(update={"input_size": 2 * n}),
        }
    )
    path = tmp_path_factory.mktemp("masked")
    save_model(path, MedicalLSTM(2 * n, 8, 1, n), card)
    return path


def sample(pid: str, seq: int, t: float, spo2: bool, lacking: str = "absent") -> bytes:
    """A message; without SpO2 it leaves it out, or (`lacking` "null") sends it as null, as
    a gateway may for a probe that fell off."""
    vitals: dict[str, float | None] = {k: v + 0.1 * (seq % 5) for k, v in NORMAL.items()}
    if not spo2:
        if lacking == "null":
            vitals["spo2"] = None
        else:
            del vitals["spo2"]
    body = {"v": 1, "patient_id": pid, "t": t, "seq": seq, "vitals": vitals}
    return json.dumps(body).encode()


@pytest.mark.parametrize("lacking", ["absent", "null"])
def test_a_probe_that_falls_off_raises_vital_lost_and_its_return_clears_it(
    mosquitto: Mosquitto,
    masked_model_dir: Path,
    tmp_path: Path,
    listener_factory: Any,
    lacking: str,
) -> None:
    """SpO2 stops at the 20th second while the other vitals go on (sample times 1 s
    apart): one `vital_lost` on spo2 is published on alerts/<pid> at the sample 5 s after
    its last value (4 of its 1 s intervals, stale_after_s 1 s), none for the other
    patient, which sends every vital; the next SpO2 clears it, and it is counted. A
    device that sends the lost SpO2 as null is the same (before, each such message was
    refused whole, `bad_schema`, and the heart rate with it)."""
    env = {"MONITOR_WINDOW__STALE_AFTER_S": "1.0"}
    daemon = Daemon(mosquitto.url, model=masked_model_dir, env=env)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    alerts: Listener = listener_factory(mosquitto.port)
    base = time.time() - 120.0
    messages = [
        (f"vitals/{pid}", sample(pid, s, base + s, s < 20 or pid == "calm", lacking))
        for s in range(40)
        for pid in ("probe", "calm")
    ]
    publish_all(mosquitto.port, messages)

    def lost() -> list[dict[str, Any]]:
        return [e for e in alerts.events() if e.get("reason") == "vital_lost"]

    wait_until(lambda: len(lost()) == 1, timeout=30)
    publish_all(mosquitto.port, [("vitals/probe", sample("probe", 40, base + 40, spo2=True))])
    wait_until(lambda: len(lost()) == 2, timeout=30)
    got = [(e["patient_id"], e["vital"], e["state"], e["severity"], e["t"] - base) for e in lost()]
    assert got == [
        ("probe", "spo2", "raised", "medium", 24.0),
        ("probe", "spo2", "cleared", "medium", 40.0),
    ]
    topics = {t for t, body in alerts.messages if b"vital_lost" in body}
    assert topics == {"alerts/probe"}
    samples = daemon.metrics()
    assert total(samples, "monitor_technical_alerts_total", reason="vital_lost") == 1
    assert total(samples, "monitor_invalid_messages_total") == 0
    assert total(samples, "monitor_technical_alerts_total", reason="signal_lost") == 0
    assert daemon.stop() == 0
