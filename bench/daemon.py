"""Benchmark the daemon's hot path and print figures (it asserts nothing).

Three parts, each measured side by side in one run on this machine:

* ``ingest``: the raw ingest ceiling (aiomqtt receive + codec decode, no inference) and the
  daemon (`monitor run`) under a paced stream of single-sample messages from the simulator:
  achieved rate, shed count, p50/p99 end-to-end latency (from its histogram) and the ratio;
* ``inference``: batched forwards vs one forward per window, windows per second;
* ``memory``: resident memory of the pipeline holding full windows for N patients.

    python bench/daemon.py ingest --rate 10000 --duration 20
    python bench/daemon.py inference
    python bench/daemon.py memory --patients 10000 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from tests.support.daemon import Daemon, total
from tests.support.mosquitto import Mosquitto

MONITOR = [sys.executable, "-m", "monitor.cli"]


def quantile(samples: dict, name: str, q: float) -> float:  # type: ignore[type-arg]
    """histogram_quantile over one scraped histogram (the demo's interpolation, since start)."""
    from monitor.demo.stats import quantile as between

    buckets = tuple(
        sorted(
            (float(dict(labels)["le"]), v)
            for (n, labels), v in samples.items()
            if n == f"{name}_bucket"
        )
    )
    return between(q, buckets, ())


def simulate(
    url: str, patients: int, rate: float, duration: float, *extra: str
) -> subprocess.Popen[bytes]:
    """Start `monitor simulate` (single-sample messages, QoS 0)."""
    return subprocess.Popen(
        [
            *MONITOR,
            "simulate",
            "--broker",
            url,
            "--patients",
            str(patients),
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--qos",
            "0",
            "--seed",
            "1",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def ceiling(url: str, patients: int, seconds: float) -> tuple[int, float]:
    """Receive + decode as fast as possible from a max-speed simulator; (messages, seconds)."""
    from monitor.core.codec import CodecLimits, decode
    from monitor.core.vitals import CLINICAL_VITALS
    from monitor.mqtt import BrokerConfig, connect, incoming_queue

    # The max-speed simulator's clock runs ahead of the wall clock: no skew check here.
    limits = CodecLimits(max_future_skew_s=1e9, max_age_s=1e10)
    n, first, last = 0, 0.0, 0.0
    # The same protocol the daemon picks without a persistent session (3.1.1).
    async with connect(BrokerConfig(url=url, protocol="3.1.1")) as conn:
        await conn.client.subscribe("vitals/+", qos=1)
        sim = simulate(url, patients, 1.0, seconds * 1e6, "--max-speed")
        queue = incoming_queue(conn.client)
        deadline = time.perf_counter() + seconds + 3
        try:
            async for message in conn.client.messages:
                batch = [message]
                while True:
                    try:
                        batch.append(queue.get_nowait())
                    except asyncio.QueueEmpty:
                        break
                for m in batch:
                    pid = m.topic.value.rpartition("/")[2]
                    decode(
                        m.payload,
                        topic_patient_id=pid,
                        features=CLINICAL_VITALS,  # type: ignore[arg-type]
                        now=time.time(),
                        limits=limits,
                    )
                now = time.perf_counter()
                if n == 0:
                    first = now
                n += len(batch)
                last = now
                if now > deadline or now - first > seconds:
                    break
        finally:
            sim.terminate()
            sim.wait()
    return n, last - first


def bench_ingest(args: argparse.Namespace) -> None:
    """Raw ingest ceiling, then the daemon under a paced stream."""
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(
            workdir=Path(tmp) / "mq", extra_config=args.broker_config.replace(";", "\n")
        )
        broker.start()
        try:
            n, dt = asyncio.run(ceiling(broker.url, args.patients, args.ceiling_seconds))
            ceiling_rate = n / dt
            print(
                f"ingest ceiling (aiomqtt receive + decode, no inference): {ceiling_rate:,.0f} msg/s ({n} in {dt:.1f} s)"
            )
            daemon = Daemon(broker.url, args.model, env={"MONITOR_INGEST__QOS": "0"})
            daemon.start(Path(tmp) / "daemon.log")
            daemon.wait_ready()
            per_patient = args.rate / args.patients
            sim = simulate(broker.url, args.patients, per_patient, args.duration)
            t0 = time.perf_counter()
            _, err = sim.communicate()
            summary = json.loads(err.decode().strip().splitlines()[-1])
            published = int(summary["messages"])
            time.sleep(2.0)
            elapsed = time.perf_counter() - t0
            m = daemon.metrics()
            code = daemon.stop()
        finally:
            broker.stop()
    received = total(m, "monitor_received_total")
    outcomes = total(m, "monitor_messages_total")
    shed = total(m, "monitor_messages_total", outcome="shed")
    dropped = total(m, "monitor_messages_total", outcome="dropped")
    scored = total(m, "monitor_messages_total", outcome="scored")
    p50 = quantile(m, "monitor_end_to_end_latency_seconds", 0.50)
    p99 = quantile(m, "monitor_end_to_end_latency_seconds", 0.99)
    inf99 = quantile(m, "monitor_inference_latency_seconds", 0.99)
    batches = total(m, "monitor_batch_size_count")
    mean_batch = total(m, "monitor_batch_size_sum") / max(batches, 1)
    rate = received / args.duration
    print(
        f"daemon at {args.rate:,.0f} msg/s requested ({args.patients} patients, {args.duration:.0f} s, QoS 0):"
    )
    print(
        f"  published {published}, received {received:.0f}, outcomes {outcomes:.0f}, scored {scored:.0f}, shed {shed:.0f}, dropped {dropped:.0f}"
    )
    print(
        f"  sustained {rate:,.0f} msg/s; end-to-end latency p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms; inference p99 {inf99 * 1e3:.2f} ms; mean batch {mean_batch:.1f}"
    )
    print(
        f"  daemon rate / ingest ceiling = {rate / ceiling_rate:.2f}; exit code {code}; wall {elapsed:.1f} s"
    )


def bench_inference(args: argparse.Namespace) -> None:
    """Windows per second: one batched forward of B windows vs B forwards of one window."""
    import torch

    from monitor.model.predictor import Predictor
    from monitor.model.store import default_model_path, load_model

    torch.set_num_threads(1)
    predictor = Predictor(load_model(args.model or default_model_path()), "cpu")
    rng = np.random.default_rng(0)
    mean = np.asarray(predictor.card.normalisation.mean, dtype=np.float32)
    windows = (mean + rng.standard_normal((args.batch, predictor.window, len(mean)))).astype(
        np.float32
    )
    predictor.predict(windows[:8])
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        predictor.predict(windows)
    batched = args.batch * args.repeat / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(args.batch):
        predictor.predict(windows[i : i + 1])
    single = args.batch / (time.perf_counter() - t0)
    print(f"inference (cpu, 1 thread, window {predictor.window}, batch {args.batch}):")
    print(
        f"  batched {batched:,.0f} windows/s, one forward per window {single:,.0f} windows/s, ratio {batched / single:.1f}x"
    )


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_memory(args: argparse.Namespace) -> None:
    """Run one subprocess per size so each RSS starts clean."""
    env = {**os.environ, **({"BENCH_MODEL": str(args.model)} if args.model else {})}
    for n in args.patients:
        out = subprocess.run(
            [sys.executable, __file__, "_memory", str(n)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        print(out.stdout.strip())


def _memory_child(n: int) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.model.store import default_model_path, load_model
    from monitor.service.metrics import Metrics
    from monitor.service.pipeline import Pipeline, model_info_from_card
    from monitor.settings import Settings

    card = load_model(Path(os.environ.get("BENCH_MODEL", default_model_path()))).card
    info = model_info_from_card(card)
    base = _rss_mib()
    settings = Settings.model_validate({"window": {"max_patients": n}})
    pipeline = Pipeline(info, settings, Metrics.create(CollectorRegistry()))
    after_alloc = _rss_mib()
    f = len(info.features)
    values = np.asarray(card.normalisation.mean, dtype=np.float64)
    t0 = time.perf_counter()
    for i in range(n):
        pid = f"p{i:06d}"
        for k in range(info.window):
            pipeline.windows.push(pid, 1.7e9 + k, k, values, 1.7e9 + k)
        pipeline.scale.z(pid, np.tile(values, (info.window, 1)), np.zeros(f))
        pipeline.detector.update(pid, np.zeros(f), 1.7e9, 0, values, values)
    full = _rss_mib()
    print(
        f"memory with {n:,} patients holding full {info.window}x{f} windows: RSS {full:.0f} MiB "
        f"(process before pipeline {base:.0f} MiB; +{after_alloc - base:.0f} MiB preallocated, "
        f"+{full - base:.0f} MiB in all, {(full - base) * 2**20 / n:,.0f} bytes/patient; fill {time.perf_counter() - t0:.0f} s)"
    )


def main() -> None:
    """Parse arguments and run one part."""
    if len(sys.argv) == 3 and sys.argv[1] == "_memory":
        _memory_child(int(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="part", required=True)
    p = sub.add_parser("ingest")
    p.add_argument("--rate", type=float, default=10_000, help="messages per second in all")
    p.add_argument("--patients", type=int, default=1000)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--ceiling-seconds", type=float, default=10.0)
    p.add_argument("--broker-config", default="", help="extra mosquitto.conf lines, ';'-separated")
    p.add_argument("--model", type=Path, default=None)
    p = sub.add_parser("inference")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--model", type=Path, default=None)
    p = sub.add_parser("memory")
    p.add_argument("--patients", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    {"ingest": bench_ingest, "inference": bench_inference, "memory": bench_memory}[args.part](args)


if __name__ == "__main__":
    main()
