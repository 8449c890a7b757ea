"""The simulator inside the demo: the `mixed` scenario published from a thread, fast."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.publisher import SyncPublisher
from simulators.labels import LabelSink
from simulators.publisher import PublishOptions, PublishStats, publish
from simulators.scenarios import Timing, build
from simulators.signals import draw_patients


@dataclass(frozen=True, slots=True)
class SimulationOptions:
    """What the demo's simulator publishes.

    Attributes:
        patients: Simulated patients.
        speed: Simulated seconds per real second.
        warmup_s: Simulated seconds before the first event. Shorter than the shipped
            model's window (120 samples): an event that starts inside the warm-up and
            outlasts it (a level shift, a drift) is alerted on as soon as scoring starts.
        gap_s: Range of quiet simulated seconds before each patient's events.
        seed: Seed of patients and events.
        scenario: Scenario name.
    """

    patients: int = 20
    speed: float = 10.0
    warmup_s: float = 70.0
    gap_s: tuple[float, float] = (10.0, 240.0)
    seed: int = 0
    scenario: str = "mixed"


class Simulation:
    """Publishes a scenario to the broker from a background thread until `stop`.

    Args:
        broker: Where to publish.
        options: Patients, speed and event timing.
    """

    def __init__(self, broker: BrokerConfig, options: SimulationOptions) -> None:
        self.broker = broker
        self.options = options
        self.stats: PublishStats | None = None
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Connect (raising `BrokerError` if that fails) and start publishing."""
        o = self.options
        sim = build(
            o.scenario,
            draw_patients(o.patients, o.seed),
            o.seed,
            1.0,
            time.time(),
            Timing(warmup_s=o.warmup_s, gap_s=o.gap_s),
        )
        sink = SyncPublisher(self.broker)
        sink.connect()

        def work() -> None:
            try:
                with LabelSink(None) as labels:
                    opts = PublishOptions(speed=o.speed, wall_clock_times=True)
                    self.stats = publish(sim, sink, labels, opts, self._stop.is_set)
            except Exception as exc:  # reported by the demo, which then stops
                self.error = exc
            finally:
                sink.close()

        self._thread = threading.Thread(target=work, name="simulator", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the publishing thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop publishing and wait for the thread (the publisher polls every 50 ms)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
