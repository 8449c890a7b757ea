"""The MQTT transport, one module per job.

* `config`: where and how to connect (`BrokerConfig`, TLS); imports no MQTT library, so
  `monitor.settings` can use it without loading the client;
* `errors`: `BrokerError` and its subclasses, and `classify` for client library errors;
* `client`: `connect` (aiomqtt: TCP_NODELAY, TLS, auth, protocol fallback, packet size
  limit), connection loss, the silence watchdog;
* `reader`: the daemon's fast receive path (one socket read per wake-up, QoS 0 PUBLISH
  parsed without paho, oversize packets and non-UTF-8 topics refused);
* `publisher`: `SyncPublisher`, the simulator's fast blocking publisher on paho;
* `_compat`: the only module that touches private attributes of paho-mqtt and aiomqtt,
  with the versions it was checked against asserted at import.

Nothing is imported here, on purpose: importing `monitor.transports.mqtt.config` must not
load aiomqtt or paho.
"""
