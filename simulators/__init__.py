"""Seeded vital-sign signal generators, anomaly scenarios and the MQTT publisher."""
