"""Startup: settings -> logging -> model -> daemon on an event loop (uvloop when present).

The composition root: the one place that picks the daemon's live transport
(`live_transport`); `service.app` knows only the engine's `LiveTransport` port.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, disable_created_metrics

from monitor.engine.transport import LiveTransport
from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model
from monitor.service.app import Daemon, InferenceHook
from monitor.service.logs import configure_logging
from monitor.settings import Settings
from monitor.transports.mqtt.ingress import MqttIngress
from monitor.transports.mqtt.topics import SYSTEM_TOPIC_ID, PartitionCheck, partition_topics
from monitor.transports.nats.partition import owned_partitions


def live_transport(settings: Settings) -> LiveTransport:
    """The daemon's transport: MQTT (a shard subscribes to its partitions' topics only,
    checks each topic's partition and publishes system alerts on ``_system/<K>``)."""
    ingest, shard = settings.ingest, settings.shard
    topics, check, system_id = list(ingest.topics), None, SYSTEM_TOPIC_ID
    if shard.enabled:
        assert shard.count is not None  # enabled
        owned = owned_partitions(shard.index, shard.count, shard.partitions)
        topics = partition_topics(shard.topic_prefix, owned)
        check = PartitionCheck(shard.partitions, owned)
        system_id = f"{SYSTEM_TOPIC_ID}/{shard.label()}"
    return MqttIngress(
        settings.broker,
        topics,
        qos=ingest.qos,
        max_payload_bytes=ingest.max_payload_bytes,
        persistent_session=ingest.persistent_session,
        session_expiry_s=ingest.session_expiry_s,
        reconnect_min_s=ingest.reconnect_min_s,
        reconnect_max_s=ingest.reconnect_max_s,
        refused_retry_s=ingest.refused_retry_s,
        alerts_prefix=settings.alerts.topic_prefix,
        alerts_qos=settings.alerts.qos,
        state_prefix=settings.alerts.state_prefix,
        system_id=system_id,
        partitions=check,
    )


def compose(
    settings: Settings,
    predictor: Predictor,
    registry: CollectorRegistry | None = None,
    inference_hook: InferenceHook | None = None,
) -> Daemon:
    """The daemon on the transport `live_transport` picks."""
    return Daemon(settings, predictor, live_transport(settings), registry, inference_hook)


def build_daemon(settings: Settings, inference_hook: InferenceHook | None = None) -> Daemon:
    """Load the model (failing with a clear `ModelLoadError`) and build the daemon.

    Args:
        settings: The daemon's settings.
        inference_hook: Called after each forward with its duration (a test's fault
            injection: tests/support/slowed_run.py).
    """
    path = settings.model.path or default_model_path()
    loaded = load_model(path)
    predictor = Predictor(loaded, settings.model.device, settings.model.backend)
    return compose(settings, predictor, inference_hook=inference_hook)


def run_daemon(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT; return its exit code."""
    configure_logging(settings.log)
    # `_created` series double the exposition and no dashboard uses them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    daemon = build_daemon(settings)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(daemon.serve())
    return uvloop.run(daemon.serve())
