"""Broker errors that name their cause, and the mapping from client library errors."""

from __future__ import annotations

import ssl

__all__ = [
    "BrokerAuthError",
    "BrokerError",
    "BrokerProtocolError",
    "BrokerTLSError",
    "classify",
]

# CONNACK codes: 3.1.1 return codes and MQTT 5 reason codes.
_AUTH_CODES = {4, 5, 134, 135, 140}
#: CONNACK codes that refuse the protocol version (3.1.1: 1, MQTT 5: 132).
VERSION_CODES = {1, 132}


class BrokerError(Exception):
    """The broker could not be used; the message names the cause and the broker URL."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(f"{message} ({url})")
        self.url = url


class BrokerAuthError(BrokerError):
    """The broker refused the credentials or the client is not authorised."""


class BrokerTLSError(BrokerError):
    """The TLS handshake failed, usually because the certificate did not verify."""


class BrokerProtocolError(BrokerError):
    """The broker refused the MQTT protocol version."""


def classify(exc: BaseException, url: str) -> BrokerError:
    """Turn a client library error into a `BrokerError` subclass that names the cause.

    Args:
        exc: What the client library raised (its ``rc`` attribute, a paho reason code or an
            int, tells refusals apart).
        url: The broker URL, for the message.
    """
    if isinstance(exc, BrokerError):
        return exc
    rc = getattr(exc, "rc", None)
    code = getattr(rc, "value", rc)  # a paho ReasonCode carries its number in `value`
    text = str(exc)
    if code in _AUTH_CODES:
        return BrokerAuthError(f"broker refused the login: {text}", url=url)
    if code in VERSION_CODES:
        return BrokerProtocolError(f"broker refused the protocol version: {text}", url=url)
    if isinstance(exc, ssl.SSLError) or "SSL" in text or "certificate" in text:
        return BrokerTLSError(f"TLS failed (is the CA file right?): {text}", url=url)
    return BrokerError(f"cannot connect to the broker: {text or type(exc).__name__}", url=url)
