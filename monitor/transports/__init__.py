"""Transports: adapters that bring payloads in and take alerts out (MQTT today)."""
