"""A paho subscriber that collects what is published on a topic filter (alerts by default)."""

from __future__ import annotations

import json
import threading
from typing import Any

import paho.mqtt.client as paho


class Listener:
    """A paho subscriber collecting (topic, payload) pairs on a filter."""

    def __init__(self, port: int, topic: str = "alerts/#") -> None:
        self.messages: list[tuple[str, bytes]] = []
        #: The messages the broker kept and sent on subscribing (the retain flag set).
        self.retained: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(5), "listener did not subscribe"

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))
            if message.retain:
                self.retained.append((message.topic, bytes(message.payload)))

    def events(self) -> list[dict[str, Any]]:
        """The JSON bodies received so far."""
        with self._lock:
            return [json.loads(p) for _, p in self.messages]

    def changes(self, reason: str) -> list[tuple[Any, ...]]:
        """(kind, reason, state, severity, patient_id) of each alert with `reason`, in order."""
        return [
            (e["kind"], e["reason"], e["state"], e["severity"], e["patient_id"])
            for e in self.events()
            if e.get("reason") == reason
        ]

    def close(self) -> None:
        """Disconnect."""
        self.client.loop_stop()
        self.client.disconnect()
