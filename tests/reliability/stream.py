"""A background publisher of single-sample messages that survives broker restarts."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as paho

from tests.reliability.conftest import payload


class Stream:
    """Publish `rate_hz` samples per second for each of `patients` patients (QoS 0).

    Every sequence number is consumed whether or not the broker was reachable, so samples
    published while it was down become sequence gaps for the daemon, as with a real device.

    Attributes:
        sent: Next sequence number per patient (= samples attempted).
    """

    def __init__(self, port: int, patients: int, rate_hz: float, prefix: str = "r") -> None:
        self.ids = [f"{prefix}{i:04d}" for i in range(patients)]
        self.sent = dict.fromkeys(self.ids, 0)
        self.rate_hz = rate_hz
        self._stop = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.reconnect_delay_set(min_delay=1, max_delay=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True, name="stream")

    def start(self) -> None:
        """Start publishing in the background."""
        self._thread.start()

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        next_at = time.monotonic()
        while not self._stop.is_set():
            for pid in self.ids:
                seq = self.sent[pid]
                self.client.publish(f"vitals/{pid}", payload(pid, seq), qos=0)
                self.sent[pid] = seq + 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> int:
        """Stop, disconnect; return the total number of samples attempted."""
        self._stop.set()
        self._thread.join()
        time.sleep(0.3)  # let paho write the last ones
        self.client.loop_stop()
        self.client.disconnect()
        return sum(self.sent.values())
