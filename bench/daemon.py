"""Benchmark the daemon's hot path and print figures (it asserts nothing).

Three parts, each measured side by side in one run on this machine:

* ``ingest``: the raw ingest ceiling (the daemon's MQTT receive path + codec decode, no
  inference) and the daemon (`monitor run`) under a paced stream of single-sample messages
  from the simulator: achieved rate, shed count, p50/p99 end-to-end latency (from its
  histogram; also without the first 2 s of scoring, when every patient's first full
  window arrives at once), the ratio, and the CPU the processes used (other users of the
  shared machine included);
* ``inference``: batched forwards vs one forward per window, windows per second;
* ``memory``: resident memory of the pipeline holding full windows for N patients.

    python bench/daemon.py ingest --rate 10000 --duration 20
    python bench/daemon.py inference
    python bench/daemon.py memory --patients 10000 100000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from tests.support.daemon import Daemon, total
from tests.support.mosquitto import Mosquitto

MONITOR = [sys.executable, "-m", "monitor.cli"]


def buckets(samples: dict, name: str) -> tuple[tuple[float, float], ...]:  # type: ignore[type-arg]
    """One scraped histogram's cumulative buckets, (le, count) by le."""
    return tuple(
        sorted(
            (float(dict(labels)["le"]), v)
            for (n, labels), v in samples.items()
            if n == f"{name}_bucket"
        )
    )


def quantile(samples: dict, name: str, q: float, since: dict | None = None) -> float:  # type: ignore[type-arg]
    """histogram_quantile over one scraped histogram (the demo's interpolation), over
    everything since start or since an earlier scrape `since`."""
    from monitor.demo.stats import quantile as between

    return between(q, buckets(samples, name), buckets(since, name) if since else ())


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all processes)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds used by this process's finished (waited-for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class SteadyMark:
    """Scrape the daemon 2 s after its first scored sample, in a thread."""

    def __init__(self, daemon: Daemon, after_s: float = 2.0) -> None:
        self.samples: dict | None = None  # type: ignore[type-arg]
        self._daemon, self._after_s = daemon, after_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        first = None
        while not self._stop.wait(0.25):
            m = self._daemon.metrics()
            if first is None and total(m, "monitor_messages_total", outcome="scored"):
                first = time.monotonic()
            if first is not None and time.monotonic() - first >= self._after_s:
                self.samples = m
                return

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        self._thread.join()


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
    """Receive + decode as fast as possible from a max-speed simulator; (messages, seconds).

    The daemon's own receive path (`connect(on_message=...)`: large socket reads, QoS 0
    PUBLISH parsed without paho) and its decoder (the codec's `decode`, bursts of up to 256).
    """
    from monitor.core.codec import CodecLimits, decode
    from monitor.core.vitals import CLINICAL_VITALS
    from monitor.transports.mqtt.client import connect
    from monitor.transports.mqtt.config import BrokerConfig

    # The max-speed simulator's clock runs ahead of the wall clock: no skew check here.
    limits = CodecLimits(max_future_skew_s=1e9, max_age_s=1e10)
    n, first, last = 0, 0.0, 0.0
    queue: deque[tuple[str, bytes]] = deque()
    ready = asyncio.Event()

    def sink(messages: list[tuple[str, bytes]]) -> None:
        queue.extend(messages)
        ready.set()

    # The same protocol the daemon picks without a persistent session (3.1.1).
    async with connect(BrokerConfig(url=url, protocol="3.1.1"), on_message=sink) as conn:
        await conn.client.subscribe("vitals/+", qos=1)
        sim = simulate(url, patients, 1.0, seconds * 1e6, "--max-speed")
        deadline = time.perf_counter() + seconds + 3
        try:
            while True:
                if not queue:
                    ready.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            ready.wait(), max(0.0, deadline - time.perf_counter())
                        )
                batch = [queue.popleft() for _ in range(min(256, len(queue)))]
                now = time.time()
                decode(
                    [p for _, p in batch],
                    [t.rpartition("/")[2] for t, _ in batch],
                    [now] * len(batch),
                    features=CLINICAL_VITALS,
                    limits=limits,
                )
                now = time.perf_counter()
                if batch and n == 0:
                    first = now
                n += len(batch)
                if batch:
                    last = now
                if now > deadline or (n and now - first > seconds):
                    break
                await asyncio.sleep(0)
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
                f"ingest ceiling (the daemon's MQTT receive + decode, no inference): {ceiling_rate:,.0f} msg/s ({n} in {dt:.1f} s)"
            )
            daemon = Daemon(broker.url, args.model, env={"MONITOR_INGEST__QOS": "0"})
            daemon.start(Path(tmp) / "daemon.log")
            daemon.wait_ready()
            assert daemon.proc is not None
            assert broker.proc is not None
            cpu0 = (
                busy_cpu_s(),
                process_cpu_s(daemon.proc.pid),
                process_cpu_s(broker.proc.pid),
                children_cpu_s(),
            )
            per_patient = args.rate / args.patients
            sim = simulate(broker.url, args.patients, per_patient, args.duration)
            mark = SteadyMark(daemon)
            t0 = time.perf_counter()
            _, err = sim.communicate()
            summary = json.loads(err.decode().strip().splitlines()[-1])
            published = int(summary["messages"])
            time.sleep(2.0)
            elapsed = time.perf_counter() - t0
            mark.stop()
            m = daemon.metrics()
            cpu1 = (
                busy_cpu_s(),
                process_cpu_s(daemon.proc.pid),
                process_cpu_s(broker.proc.pid),
                children_cpu_s(),
            )
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
    steady = mark.samples
    s50 = quantile(m, "monitor_end_to_end_latency_seconds", 0.50, steady) if steady else None
    s99 = quantile(m, "monitor_end_to_end_latency_seconds", 0.99, steady) if steady else None
    machine, d_cpu, b_cpu, s_cpu = (b - a for a, b in zip(cpu0, cpu1, strict=True))
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
    if s50 is not None and s99 is not None:
        print(
            f"  after the first 2 s of scoring: latency p50 {s50 * 1e3:.2f} ms, p99 {s99 * 1e3:.2f} ms"
        )
    print(
        f"  daemon rate / ingest ceiling = {rate / ceiling_rate:.2f}; exit code {code}; wall {elapsed:.1f} s"
    )
    print(
        f"  CPU over the stream: daemon {d_cpu:.1f} s ({d_cpu * 1e6 / max(received, 1):.0f} us/msg), "
        f"broker {b_cpu:.1f} s, simulator {s_cpu:.1f} s, everything else on the machine "
        f"{machine - d_cpu - b_cpu - s_cpu:.1f} s, of {2 * elapsed:.0f} core-seconds"
    )


def bench_inference(args: argparse.Namespace) -> None:
    """Windows per second: one batched forward of B windows vs B forwards of one window."""
    import torch

    from monitor.model.features import with_flags
    from monitor.model.predictor import Predictor
    from monitor.model.store import default_model_path, load_model

    torch.set_num_threads(1)
    predictor = Predictor(load_model(args.model or default_model_path()), "cpu", args.backend)
    rng = np.random.default_rng(0)
    mean = np.asarray(predictor.card.normalisation.mean, dtype=np.float32)
    windows = (mean + rng.standard_normal((args.batch, predictor.window, len(mean)))).astype(
        np.float32
    )
    if predictor.card.observed_mask:  # every vital observed: flags of 1 after the values
        windows = with_flags(windows)
    predictor.predict(windows[:8])
    t0 = time.perf_counter()
    for _ in range(args.repeat):
        predictor.predict(windows)
    batched = args.batch * args.repeat / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(args.batch):
        predictor.predict(windows[i : i + 1])
    single = args.batch / (time.perf_counter() - t0)
    print(
        f"inference (cpu, {predictor.backend}, 1 thread, window {predictor.window}, "
        f"batch {args.batch}):"
    )
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

    from monitor.engine.pipeline import Pipeline, model_info_from_card
    from monitor.model.features import with_flags
    from monitor.model.store import default_model_path, load_model
    from monitor.service.metrics import Metrics
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
        context = np.tile(values, (info.window, 1))
        if info.observed_mask:  # the masked scale reads the flags after the values
            context = with_flags(context[None])[0]
        pipeline.scale.z(pid, context, np.zeros(f))
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
    p.add_argument("--backend", choices=["auto", "torch", "onnxruntime"], default="auto")
    p = sub.add_parser("memory")
    p.add_argument("--patients", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--model", type=Path, default=None)
    args = ap.parse_args()
    {"ingest": bench_ingest, "inference": bench_inference, "memory": bench_memory}[args.part](args)


if __name__ == "__main__":
    main()
