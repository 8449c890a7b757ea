"""The NATS transport: partitions of patients and window recovery from a JetStream stream.

* `partition`: FNV-1a-32, the hash of nats-server's ``partition()`` subject mapping, and
  which partitions a shard owns; imports no client library (settings and the MQTT topic
  convention use it);
* `history`: replay of a shard's partitions from the stream (nats-py, JetStream).

Live samples reach a shard through the NATS server's MQTT listener, so the live path is the
MQTT transport's (`monitor.transports.mqtt.topics` holds the partitioned topic convention).
Nothing is imported here, on purpose: `partition` must load without nats-py.
"""
