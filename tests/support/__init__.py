"""Helpers shared by the test suite: real brokers and servers on free loopback ports."""
