"""The engine: one scheduler behind ports, used by every driver.

* `ports`: what the engine is given and what it reports through (Protocols): the ingress
  batch, the alert sink, the clock, the stages it drives, the inference worker and the
  report of forwards;
* `scheduler`: `Scheduler`, the one path from a batch of payloads to events: ingest, the
  batcher's flushes onto the inference worker, scoring in batch order, failure handling,
  drain on stop;
* `worker`: the inference worker on an executor (`ThreadWorker`);
* `ticks`: housekeeping passes on an injected clock (`Ticks`), and `replay`, the plain loop
  that drives the scheduler on a recording's virtual clock (`VirtualLoop`).

Synchronous and transport-free: no asyncio, MQTT, prometheus_client or structlog here (the
purity test checks every module of the package). The live daemon wraps it in an asyncio
shell with the wall clock; offline replay and the shard's stream recovery drive it from a
plain loop on the records' receive times.
"""
