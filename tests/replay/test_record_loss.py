"""`monitor record` against a real Mosquitto: keeps a simulated stream whole, reports loss."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from monitor.core.schema import encode_sample
from monitor.replay.recorder import record
from monitor.replay.recording import read_recording
from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.errors import BrokerError
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt

MONITOR = [sys.executable, "-m", "monitor.cli"]
SUMMARY = re.compile(r"recorded (\d+) messages to .*; lost (\d+) of (\d+) samples")


@contextmanager
def _publisher(port: int) -> Iterator[paho.Client]:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        yield client
    finally:
        client.loop_stop()
        client.disconnect()


@contextmanager
def _recorder(broker: Mosquitto, out: Path) -> Iterator[subprocess.Popen[str]]:
    """`monitor record` to `out`, yielded once it records (a probe patient shows up)."""
    proc = subprocess.Popen(
        [*MONITOR, "record", "--out", str(out), "--broker", broker.url],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with _publisher(broker.port) as probe:
            deadline = time.monotonic() + 60
            seq = 0
            while "probe" not in (out.read_text() if out.exists() else ""):
                assert time.monotonic() < deadline, "the recorder never subscribed"
                assert proc.poll() is None, proc.communicate()[1]
                probe.publish("vitals/probe", encode_sample("probe", 1.7e9, seq, {"spo2": 97.0}))
                seq += 1
                time.sleep(0.2)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def record_simulated_stream(mosquitto: Mosquitto, tmp_path: Path) -> tuple[int, int, int, int]:
    """Record 20,000 QoS 0 messages sent at max speed; the summary line agrees with the file.

    Returns:
        (published, samples recorded, lost by seq gaps, exit code).
    """
    out = tmp_path / "r.jsonl"
    with _recorder(mosquitto, out) as proc:
        sim = [*MONITOR, "simulate", "--broker", mosquitto.url, "--max-speed"]
        sim += ["--patients", "100", "--duration", "200"]
        done = subprocess.run(sim, capture_output=True, text=True, timeout=120, check=True)
        published = json.loads(done.stderr.strip().splitlines()[-1])["messages"]
        code, err = _stop(proc)
    assert published == 20_000
    topics = [r.topic for r in read_recording(out)]
    (match,) = SUMMARY.findall(err)
    recorded, lost, _ = map(int, match)
    assert recorded == len(topics)
    samples = len(topics) - topics.count("vitals/probe")
    # Seq gaps see every loss but those after a patient's last recorded sample.
    assert lost <= published - samples
    assert code == (3 if lost else 0), err
    return published, samples, lost, code


def test_a_simulated_stream_is_recorded_and_its_loss_reported(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """20,000 QoS 0 messages at max speed: the recording, the summary line and the exit code
    agree (whether a loaded machine drops some is the perf variant's question)."""
    published, samples, lost, _ = record_simulated_stream(mosquitto, tmp_path)
    print(f"recorded {samples} of {published} samples, lost by seq gaps {lost}")


@pytest.mark.perf
def test_a_simulated_stream_is_recorded_whole(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """20,000 QoS 0 messages at max speed: all recorded, `lost 0`, exit code 0."""
    published, samples, lost, code = record_simulated_stream(mosquitto, tmp_path)
    assert code == 0
    assert samples == published
    assert lost == 0


def test_skipped_seqs_are_reported_as_loss_with_exit_code_3(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """A publisher that skips every 10th seq of one patient: `lost 9 of ...`, exit code 3."""
    out = tmp_path / "r.jsonl"
    with _recorder(mosquitto, out) as proc, _publisher(mosquitto.port) as pub:
        for seq in range(100):
            pub.publish("vitals/whole", encode_sample("whole", 1.7e9 + seq, seq, {"spo2": 97.0}))
            if seq % 10 or seq == 0:
                pub.publish(
                    "vitals/gappy", encode_sample("gappy", 1.7e9 + seq, seq, {"spo2": 97.0})
                )
        time.sleep(0.5)
        code, err = _stop(proc)
    assert code == 3, err
    (match,) = SUMMARY.findall(err)
    recorded, lost, expected = map(int, match)
    topics = [r.topic for r in read_recording(out)]
    assert (topics.count("vitals/whole"), topics.count("vitals/gappy")) == (100, 91)
    assert lost == 9
    assert expected == recorded + lost  # every message is one sample, none duplicated


def test_a_lost_broker_ends_the_recording_with_a_broker_error(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """The broker goes away mid-recording: BrokerError, and what was received is on disk."""
    out = tmp_path / "r.jsonl"

    async def scenario() -> None:
        subscribed = asyncio.Event()
        task = asyncio.create_task(
            record(BrokerConfig(url=mosquitto.url), out, qos=0, subscribed=subscribed)
        )
        await asyncio.wait_for(subscribed.wait(), 10)
        with _publisher(mosquitto.port) as pub:
            payload = encode_sample("p1", 1.7e9, 0, {"spo2": 97.0})
            pub.publish("vitals/p1", payload, qos=1).wait_for_publish(5)
        await asyncio.sleep(0.5)
        mosquitto.stop()
        with pytest.raises(BrokerError):
            await asyncio.wait_for(task, 30)

    asyncio.run(scenario())
    assert [r.topic for r in read_recording(out)] == ["vitals/p1"]
