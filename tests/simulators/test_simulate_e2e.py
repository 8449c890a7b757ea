"""`monitor simulate` as a process against a real Mosquitto: every message, clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.core.schema import MESSAGE_ADAPTER
from monitor.transports.mqtt.client import connect
from monitor.transports.mqtt.config import BrokerConfig
from simulators.labels import read_labels
from simulators.scenarios import Timing, build
from simulators.signals import draw_patients
from tests.support.mosquitto import Mosquitto

MONITOR = str(Path(sys.executable).parent / "monitor")
START = 1.7e9


async def _collect(
    url: str, argv: list[str], stop_after: int | None = None
) -> tuple[int, str, dict[str, dict[int, dict[str, float]]]]:
    """Run the simulator while a subscriber collects samples by patient and seq."""
    got: dict[str, dict[int, dict[str, float]]] = {}
    n = 0
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def sink(messages: list[tuple[str, bytes]]) -> None:
        for message in messages:
            queue.put_nowait(message)

    async with connect(BrokerConfig(url=url), on_message=sink) as conn:
        await conn.client.subscribe("vitals/#", qos=1)
        proc = await asyncio.create_subprocess_exec(
            MONITOR, "simulate", "--broker", url, *argv, stderr=asyncio.subprocess.PIPE
        )
        idle = 0.0
        while idle < 1.0:
            try:
                topic, payload = await asyncio.wait_for(queue.get(), 0.1)
            except TimeoutError:
                idle = idle + 0.1 if proc.returncode is not None else 0.0
                continue
            n += 1
            parsed = MESSAGE_ADAPTER.validate_json(payload)
            assert topic == f"vitals/{parsed.patient_id}"
            for s in parsed.samples():
                assert s.seq not in got.setdefault(parsed.patient_id, {})
                got[parsed.patient_id][s.seq] = {"t": s.t, **s.vitals}
            if stop_after is not None and n == stop_after:
                proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode is not None
        return proc.returncode, err.decode(), got


@pytest.mark.mqtt
@pytest.mark.parametrize("block", [1, 7])
def test_every_message_arrives_in_sequence(
    mosquitto: Mosquitto, tmp_path: Path, block: int
) -> None:
    """Each patient's seqs are contiguous except labelled dropouts; values and (with
    --original-times) times match the scenario."""
    labels_path = tmp_path / "labels.jsonl"
    argv = [
        "--patients",
        "4",
        "--rate",
        "10",
        "--duration",
        "90",
        "--max-speed",
        "--original-times",
        "--qos",
        "1",
        "--scenario",
        "sensor-dropout",
        "--warmup",
        "5",
        "--gap",
        "5",
        "10",
        "--seed",
        "3",
        "--start-time",
        str(START),
        "--labels",
        str(labels_path),
        "--block",
        str(block),
    ]
    rc, err, got = asyncio.run(_collect(mosquitto.url, argv))
    assert rc == 0, err
    summary = json.loads(err.strip().splitlines()[-1])
    labels = read_labels(labels_path)
    assert labels, "the scenario should drop some samples"
    sim = build(
        "sensor-dropout", draw_patients(4, 3), 3, 10.0, START, Timing(warmup_s=5, gap_s=(5, 10))
    )
    for i, pid in enumerate(f"p000{k}" for k in range(4)):
        dropped = {
            s
            for lab in labels
            if lab.patient_id == pid
            for s in range(lab.start_seq, lab.end_seq + 1)
        }
        assert sorted(got[pid]) == [s for s in range(900) if s not in dropped]
        t, values, present = sim.samples(i, 0, 900)
        sent = np.flatnonzero(present)
        assert [got[pid][s]["t"] for s in sent] == t[sent].tolist()
        assert [got[pid][s]["spo2"] for s in sent] == values[sent, 1].tolist()
    assert summary["samples"] == sum(len(v) for v in got.values())


@pytest.mark.mqtt
def test_sigterm_exits_zero_with_complete_labels(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """SIGTERM mid-run: exit 0, summary says so, labels file holds every event started."""
    labels_path = tmp_path / "labels.jsonl"
    argv = [
        "--patients",
        "3",
        "--rate",
        "20",
        "--speed",
        "5",
        "--original-times",  # the labels' times are then the scenario's
        "--scenario",
        "mixed",
        "--warmup",
        "1",
        "--gap",
        "1",
        "2",
        "--seed",
        "9",
        "--start-time",
        str(START),
        "--labels",
        str(labels_path),
    ]
    rc, err, got = asyncio.run(_collect(mosquitto.url, argv, stop_after=600))
    assert rc == 0, err
    summary = json.loads(err.strip().splitlines()[-1])
    assert summary["stopped_by_signal"] is True
    ticks = summary["ticks"]
    sim = build("mixed", draw_patients(3, 9), 9, 20.0, START, Timing(warmup_s=1, gap_s=(1, 2)))
    expected = [lab for i in range(3) for lab in sim.labels(i, 0, ticks)]
    assert sorted(read_labels(labels_path), key=repr) == sorted(expected, key=repr)
    assert len(expected) > 0
    assert max(max(seqs) for seqs in got.values()) == ticks - 1
