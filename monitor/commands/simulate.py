"""`monitor simulate`: publish simulated patients' vital signs, with labelled anomalies."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click
import numpy as np
from click.core import ParameterSource

from monitor.commands.broker import broker_config, broker_options
from monitor.commands.signals import registry_of, signal_option
from monitor.transports.mqtt.errors import BrokerError
from monitor.transports.mqtt.publisher import SyncPublisher
from simulators.labels import LabelSink
from simulators.publisher import PublishOptions, PublishStats, publish
from simulators.recording import RecordingSink
from simulators.scenarios import SCENARIOS, Timing, build, quick_timing
from simulators.signals import draw_patients, patient_id_for, seed_profile, with_signals

#: Deprecated name of MONITOR_BROKER__PASSWORD that `simulate` read.
LEGACY_PASSWORD = ("MONITOR_SIM_PASSWORD",)


@click.command("simulate")
@broker_options
@click.option("--qos", type=click.IntRange(0, 2), default=0, show_default=True)
@click.option("--patients", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Samples per patient per simulated second.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0),
    default=None,
    help="Simulated seconds to publish (default: until SIGINT/SIGTERM).",
)
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Simulated seconds per real second.",
)
@click.option("--max-speed", is_flag=True, help="Publish as fast as possible.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--profile",
    type=click.Choice(["clinical", "seed"]),
    default="clinical",
    show_default=True,
    help="clinical: six vitals; seed: the tutorial's sin(t)+noise.",
)
@click.option("--scenario", type=click.Choice(list(SCENARIOS)), default="stable", show_default=True)
@signal_option
@click.option(
    "--warmup",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    help="Simulated seconds without events at the start.",
)
@click.option(
    "--gap",
    type=(float, float),
    default=(300.0, 900.0),
    show_default=True,
    help="Range of quiet simulated seconds between events of one patient.",
)
@click.option(
    "--quick",
    is_flag=True,
    help="See an alert soon: the mixed scenario, events from the end of the shipped model's "
    "window (120 samples) on, every 10 to 60 simulated s per patient (explicit --scenario, "
    "--warmup, --gap win).",
)
@click.option(
    "--labels",
    "labels_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write injected events here (JSON Lines).",
)
@click.option("--labels-topic", default=None, help="Also publish labels here (QoS 1).")
@click.option("--topic-prefix", default="vitals", show_default=True)
@click.option(
    "--block",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Samples per message (more than 1: block messages).",
)
@click.option(
    "--recording",
    "recording_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the stream to this recording instead of a broker (as fast as possible; each "
    "record's receive time is its sample time). Needs --duration.",
)
@click.option(
    "--start-time",
    type=float,
    default=None,
    help="Unix time of sample 0 of the simulated clock (default: now): the sample times of "
    "--recording and --original-times; fix it for byte-identical runs.",
)
@click.option(
    "--original-times",
    is_flag=True,
    help="Send the simulated sample times (start time + seq / rate) instead of the wall-clock "
    "send times; with --speed above 1 they run ahead of a receiver's clock (docs/time.md).",
)
def command(
    broker: str | None,
    username: str | None,
    password: str | None,
    password_file: Path | None,
    ca_file: Path | None,
    client_id: str | None,
    protocol: str | None,
    qos: int,
    patients: int,
    rate: float,
    duration: float | None,
    speed: float,
    max_speed: bool,
    seed: int,
    profile: str,
    scenario: str,
    signals: tuple[str, ...],
    warmup: float,
    gap: tuple[float, float],
    quick: bool,
    labels_path: Path | None,
    labels_topic: str | None,
    topic_prefix: str,
    block: int,
    recording_path: Path | None,
    start_time: float | None,
    original_times: bool,
) -> None:
    """Publish noisy vital signs of simulated patients to <topic-prefix>/<patient_id>.

    Each --signal adds a registered signal to every patient: a sine with noise inside its
    bounds (a generic shape, not a physiological model). Each sample is stamped with the
    wall-clock time it is sent at, so an accelerated run (--speed) is scored by a default
    daemon; --original-times sends the simulated times. Exits 0 on SIGINT/SIGTERM after
    flushing the labels file and disconnecting. A summary (JSON) goes to standard error.
    """
    credentials: dict[str, Any] = {"broker": broker, "username": username, "password": password}
    credentials |= {"password_file": password_file, "ca_file": ca_file}
    credentials |= {"client_id": client_id, "protocol": protocol}
    cfg = broker_config("simulate", credentials, LEGACY_PASSWORD)
    registry = registry_of(signals)
    ids = [patient_id_for(i) for i in range(patients)]
    profiles = (
        [seed_profile(pid) for pid in ids] if profile == "seed" else draw_patients(patients, seed)
    )
    if registry.registered:
        profiles = [
            with_signals(p, registry.registered, np.random.default_rng([seed, i, 0x5164]))
            for i, p in enumerate(profiles)
        ]
    if quick:
        scenario, timing = _quick(scenario, rate, warmup, gap)
    else:
        timing = Timing(warmup_s=warmup, gap_s=gap)
    t0 = time.time() if start_time is None else start_time
    try:
        sim = build(scenario, profiles, seed, rate, t0, timing, registry)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--scenario") from None
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    if recording_path is not None:
        if duration is None:
            raise click.UsageError("--recording needs --duration")
        opts = PublishOptions(topic_prefix, qos, block, speed, True, duration, None)
        with RecordingSink(recording_path) as rec, LabelSink(labels_path) as labels:
            stats = publish(sim, rec, labels, opts, stop.is_set)
        _summarise("recording", stats, stop.is_set())
        return
    if max_speed and not original_times and (labels_path or labels_topic):
        # A label is written before its event; at max speed the wire time of its last
        # sample is not known then.
        raise click.UsageError("--max-speed with --labels/--labels-topic needs --original-times")
    opts = PublishOptions(
        topic_prefix, qos, block, speed, max_speed, duration, labels_topic, not original_times
    )
    sink = SyncPublisher(cfg)
    try:
        used = sink.connect()
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        with LabelSink(labels_path) as labels:
            stats = publish(sim, sink, labels, opts, stop.is_set)
    finally:
        sink.close()
    _summarise(used, stats, stop.is_set())


def _quick(
    scenario: str, rate: float, warmup: float, gap: tuple[float, float]
) -> tuple[str, Timing]:
    """`--quick`: the mixed scenario and `quick_timing`, except where given on the command line."""
    ctx = click.get_current_context()

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) is not ParameterSource.DEFAULT

    quick = quick_timing(rate)
    return (
        scenario if given("scenario") else "mixed",
        Timing(
            warmup_s=warmup if given("warmup") else quick.warmup_s,
            gap_s=gap if given("gap") else quick.gap_s,
        ),
    )


def _summarise(protocol: str, stats: PublishStats, stopped: bool) -> None:
    rate_achieved = stats.samples / stats.elapsed_s if stats.elapsed_s > 0 else 0.0
    summary = {
        "protocol": protocol,
        "messages": stats.messages,
        "samples": stats.samples,
        "labels": stats.labels,
        "ticks": stats.ticks,
        "elapsed_s": round(stats.elapsed_s, 3),
        "samples_per_s": round(rate_achieved, 1),
        "stopped_by_signal": stopped,
    }
    print(json.dumps(summary), file=sys.stderr)
