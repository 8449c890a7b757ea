"""Two shards on one nats-server (JetStream, MQTT listener, the partition mapping), fed by the
simulator publishing plain `vitals/<id>`: every patient is scored by exactly one shard, and a
shard killed with SIGKILL and started again rebuilds its patients' windows from the stream,
scores the first live sample after the restart, and loses or scores twice no sample; the
physiological alerts published by the shards are those of one daemon run offline over the
same stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as paho

from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model
from monitor.replay.offline import OfflineRunner
from monitor.replay.outcomes import outcome_counts
from monitor.replay.recording import Record
from monitor.settings import Settings
from monitor.transports.nats.history import ReplayBatch, replay
from monitor.transports.nats.partition import partition_of
from tests.support.daemon import MONITOR, Daemon, total
from tests.support.nats_server import NatsServer

PATIENTS = 16
DURATION = 480  # simulated seconds at 1 Hz (the mixed scenario drops some samples)
#: 20x the wall clock: the 120-sample window fills in 6 s, the run lasts 24 s (the restarted
#: shard is live again well before it ends).
SIMULATE = [
    "--patients", str(PATIENTS), "--duration", str(DURATION), "--speed", "20",
    "--scenario", "mixed", "--warmup", "125", "--gap", "10", "40", "--seed", "3",
]  # fmt: skip
#: Sample times run ahead of the wall clock: lift the codec's future-skew guard.
ENV = {"MONITOR_INGEST__MAX_FUTURE_SKEW_S": "1e9"}


class _Alerts:
    """Collects the alerts published on the NATS MQTT listener."""

    def __init__(self, port: int) -> None:
        self.payloads: list[dict[str, object]] = []
        self._subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="alert-reader", protocol=paho.MQTTv311
        )
        self.client.on_message = lambda _c, _u, m: self.payloads.append(json.loads(m.payload))
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe("alerts/#", qos=1)
        assert self._subscribed.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _left_open(events: list[dict[str, object]]) -> dict[str, set[tuple[object, ...]]]:
    """Each patient's alerts left open by `events` in order (system-wide ones aside)."""
    left: dict[str, set[tuple[object, ...]]] = {}
    for e in events:
        if e["patient_id"] is None:
            continue
        key = (e["kind"], e["vital"], e["reason"] if e["kind"] == "technical" else None)
        mine = left.setdefault(str(e["patient_id"]), set())
        if e["state"] in ("raised", "escalated"):
            mine.add(key)
        else:
            mine.discard(key)
    return {pid: keys for pid, keys in left.items() if keys}


def _retained_states(port: int) -> dict[str, set[tuple[object, ...]]]:
    """The open alerts of each patient's retained state message on the server."""
    got: dict[str, bytes] = {}
    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id="state-reader", protocol=paho.MQTTv311
    )
    client.on_message = lambda _c, _u, m: got.__setitem__(m.topic, bytes(m.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.subscribe("alert-state/#", qos=1)
    time.sleep(3.0)  # the retained messages follow the subscription
    client.loop_stop()
    client.disconnect()
    states: dict[str, set[tuple[object, ...]]] = {}
    for topic, payload in got.items():
        if topic.startswith("alert-state/_system") or not payload:
            continue
        body = json.loads(payload)
        states[topic.split("/", 1)[1]] = {
            (a["kind"], a["vital"], a["reason"] if a["kind"] == "technical" else None)
            for a in body["open"]
        }
    return states


def _outcomes(d: Daemon) -> Counter[str]:
    """`d`'s outcome counts; a scrape that times out on the loaded 2 cores is tried again."""
    for attempt in range(3):
        try:
            m = d.metrics()
            break
        except TimeoutError:
            if attempt == 2:
                raise
    names = ("scored", "warming_up", "duplicate", "late", "invalid", "dropped", "shed", "failed")
    return Counter({o: int(total(m, "monitor_messages_total", outcome=o)) for o in names})


def _settle(d: Daemon, at_least: int, timeout: float = 60.0) -> Counter[str]:
    """Wait until `d`'s outcomes add up to `at_least` or more and stop moving."""
    deadline = time.monotonic() + timeout
    last = Counter[str]()
    while time.monotonic() < deadline:
        now = _outcomes(d)
        if sum(now.values()) >= at_least and now == last:
            return now
        last = now
        time.sleep(0.5)
    raise TimeoutError(f"outcomes {last} below {at_least}: {d.log_text()[-2000:]}")


def _stream(server: NatsServer) -> list[Record]:
    """Every message the stream holds, as records in receive order."""
    got: list[Record] = []

    async def handle(batch: ReplayBatch) -> None:
        got.extend(Record(t, p, at) for t, p, at in batch)

    asyncio.run(replay(server.url, "VITALS", "vitals", range(64), handle))
    return sorted(got, key=lambda r: r.received_at)


def _offline(records: list[Record]) -> tuple[Counter[str], set[str]]:
    """One daemon's outcomes and physiological alert ids over `records`, offline."""
    settings = Settings(ingest={"max_future_skew_s": 1e9})
    predictor = Predictor(load_model(default_model_path()), "cpu", settings.model.backend)
    runner = OfflineRunner(predictor, settings)
    try:
        runner.feed(records)
        runner.finish()
    finally:
        runner.close()
    outcomes = Counter(outcome_counts(runner.metrics.messages, runner.metrics.invalid))
    gaps = runner.metrics.registry.get_sample_value("monitor_sequence_gaps_total")
    outcomes["sequence_gaps"] = int(gaps or 0)
    return outcomes, {a.id for a in runner.alerts if a.kind == "physiological"}


def test_two_shards_share_the_patients_and_a_killed_shard_recovers(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Disjoint, complete shards (a sample published into a wrong partition refused);
    SIGKILL and restart of shard 1 with windows from the stream."""
    ids = [f"p{i:04d}" for i in range(PATIENTS)]
    of_shard = {k: [p for p in ids if partition_of(p, 64) % 2 == k] for k in (0, 1)}
    assert of_shard[0]
    assert of_shard[1]
    outbox = {"MONITOR_ALERTS__OUTBOX_PATH": str(tmp_path / "shard1.outbox.sqlite3")}

    def shard(k: int) -> Daemon:
        args = ["--shard", f"{k}/2", "--nats", nats_server.url]
        return Daemon(nats_server.mqtt_url, args=args, env={**ENV, **(outbox if k else {})})

    a, b = shard(0), shard(1)
    alerts = _Alerts(nats_server.mqtt_port)
    sim: subprocess.Popen[bytes] | None = None
    b2: Daemon | None = None
    sim_log = (tmp_path / "simulate.log").open("wb")
    try:
        a.start(tmp_path / "shard0.log")
        b.start(tmp_path / "shard1.log")
        a.wait_ready()
        b.wait_ready()
        # A client publishing straight into a partition of shard 0 that is not its id's.
        intruder = of_shard[1][0]
        wrong = next(k for k in range(0, 64, 2) if k != partition_of(intruder, 64))
        alerts.client.publish(f"vitals/{wrong}/{intruder}", b"{}", qos=1).wait_for_publish(5)
        a.wait_for("monitor_invalid_messages_total", 1, reason="wrong_partition")
        # And one in shard 1's partition 1, which the restarted shard meets in its replay.
        alerts.client.publish(f"vitals/1/{of_shard[0][0]}", b"{}", qos=1).wait_for_publish(5)
        b.wait_for("monitor_invalid_messages_total", 1, reason="wrong_partition")
        sim = subprocess.Popen(
            [*MONITOR, "simulate", "--broker", nats_server.mqtt_url, *SIMULATE],
            stdout=subprocess.DEVNULL,
            stderr=sim_log,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        # Past the warm-up: pause the devices, let shard 1 score what it received, kill it.
        b.wait_for("monitor_messages_total", 20 * len(of_shard[1]), outcome="scored", timeout=60)
        sim.send_signal(signal.SIGSTOP)
        before = _settle(b, 0)
        b.stop(signal.SIGKILL)
        sim.send_signal(signal.SIGCONT)  # the devices go on while shard 1 is down and recovers
        time.sleep(1.0)
        b2 = shard(1)
        b2.start(tmp_path / "shard1-restarted.log")
        b2.wait_ready(timeout=60)
        assert sim.wait(60) == 0
        stream = _stream(nats_server)
        mine = {k: [r for r in stream if int(r.topic.split("/")[1]) % 2 == k] for k in (0, 1)}
        out_a = _settle(a, len(mine[0]))
        out_b = _settle(b2, len(mine[1]))
        scraped = {"a": a.metrics(), "b2": b2.metrics()}
        time.sleep(1.0)  # the last alerts on their way
    finally:
        if sim is not None and sim.poll() is None:
            sim.send_signal(signal.SIGCONT)
            sim.terminate()
        for d in (a, b, b2):
            if d is not None and d.proc is not None:
                d.stop()
        alerts.close()
        sim_log.close()

    # Disjoint and complete: each shard scored exactly its own patients' samples, as one
    # daemon does offline over them.
    offline_a, alerts_a = _offline(mine[0])
    offline_b, alerts_b = _offline(mine[1])
    assert {r.topic.rsplit("/", 1)[1] for r in mine[0]} == {*of_shard[0], intruder}
    assert {r.topic.rsplit("/", 1)[1] for r in mine[1]} == {*of_shard[1], of_shard[0][0]}
    assert (out_a["scored"], out_a["warming_up"]) == (offline_a["scored"], offline_a["warming_up"])
    assert out_a["duplicate"] + out_a["late"] + out_a["dropped"] == 0
    assert out_a["invalid"] == 1  # the intruder, refused as wrong_partition
    # The restarted shard replayed its patients from the stream (from their first sample)
    # and then took the live ones: each sample scored once (the replay and the live queue
    # overlap only as duplicate or late), the warm-up no longer than offline (so the first
    # live sample was scored, not warming up), no sequence gap.
    assert (out_b["scored"], out_b["warming_up"]) == (offline_b["scored"], offline_b["warming_up"])
    assert total(scraped["b2"], "monitor_sequence_gaps_total") == offline_b["sequence_gaps"]
    assert total(scraped["b2"], "monitor_invalid_messages_total", reason="wrong_partition") == 1
    assert total(scraped["b2"], "monitor_received_total") > 0  # it went live before the end
    assert total(scraped["b2"], "monitor_recovered_messages_total") >= sum(before.values())
    recovered = [e for e in b2.log_events() if e.get("event") == "recovered"]
    assert [e["shard"] for e in recovered] == ["1", "1"]  # the replay, then the catch-up
    # Shard identity: every series of a shard carries its label.
    assert {dict(labels).get("shard") for _, labels in scraped["a"]} == {"0"}
    assert {dict(labels).get("shard") for _, labels in scraped["b2"]} == {"1"}
    # Alerts: the shards published what one daemon decides offline on the same stream.
    published = Counter(str(p["id"]) for p in alerts.payloads if p.get("kind") == "physiological")
    assert alerts_a | alerts_b, "the scenario raised no alert: the comparison would be empty"
    assert set(published) == alerts_a | alerts_b
    # None twice: the restarted shard published only what its replay decided and nobody had.
    assert max(published.values()) == 1
    # The open alerts (docs/alerts.md, "Open alerts"): the state messages the shards left
    # retained on the server, read by a reader connecting after they stopped, show what
    # the alert events they published leave open, patient by patient, the killed and
    # restarted shard's included (its outbox kept them; its replay's events, published or
    # found published, followed).
    assert _retained_states(nats_server.mqtt_port) == _left_open(alerts.payloads)
