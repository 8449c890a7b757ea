"""Where and how to connect to a broker: the URL, credentials, protocol, TLS.

No MQTT library is imported here: `monitor.settings` holds a `BrokerConfig` without
loading the client (a test checks it in a fresh interpreter).
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from monitor.transports.mqtt.errors import BrokerTLSError, classify

__all__ = ["BrokerConfig", "ProtocolName", "Version", "attempts", "check_tls"]

ProtocolName = Literal["auto", "5", "3.1.1"]
Version = Literal["5", "3.1.1"]
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_URL_HINT = (
    " (in a URL a password's '#', '/', '?' and '@' must be percent-encoded; better, give it "
    "in a password file or the environment: docs/settings.md)"
)


class BrokerConfig(BaseModel):
    """Where and how to connect to a broker.

    Credentials in the URL (``mqtt://user:pass@host:port``) move into `username` and
    `password` unless those are given; the stored `url` never holds a password.

    Attributes:
        url: ``mqtt://host[:port]`` or ``mqtts://host[:port]`` (TLS); ports default to 1883/8883.
        username: User name; overrides the URL's.
        password: Password; overrides the URL's; never shown in repr or logs.
        ca_file: CA bundle that signs the broker's certificate; the system store when None.
        certfile: Client certificate (mutual TLS).
        keyfile: Client private key (mutual TLS).
        client_id: MQTT client id; a random one when None.
        protocol: "5", "3.1.1" or "auto" (5, falling back to 3.1.1 when refused).
        keepalive: Keepalive interval, seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    client_id: str | None = None
    protocol: ProtocolName = "auto"
    keepalive: int = Field(default=60, ge=1, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _split_url(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "url" not in data:
            return data
        # No message below quotes the URL or a part of it: a password with an unencoded
        # '#', '/', '?' or '@' shifts the parts, and the "port" or "host" may be the
        # start of the password (issue 16, item 13).
        url = str(data["url"])
        hint = _URL_HINT if "@" in url else ""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(f"broker URL is malformed or has a bad port{hint}") from None
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError("broker URL scheme must be mqtt or mqtts (mqtt://host:port)")
        if not parts.hostname:
            raise ValueError(f"broker URL has no host (expected mqtt://host:port){hint}")
        port = port or _DEFAULT_PORTS[parts.scheme]
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"broker URL must not have a path, query or fragment{hint}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        out = dict(data, url=f"{parts.scheme}://{host}:{port}")
        if parts.username and out.get("username") is None:
            out["username"] = unquote(parts.username)
        if parts.password and out.get("password") is None:
            out["password"] = unquote(parts.password)
        return out

    @property
    def host(self) -> str:
        """The broker's host name or address."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The broker's TCP port."""
        return urlsplit(self.url).port or _DEFAULT_PORTS[self.scheme]

    @property
    def scheme(self) -> str:
        """``mqtt`` or ``mqtts``."""
        return urlsplit(self.url).scheme

    def tls_context(self) -> ssl.SSLContext | None:
        """Return the verifying TLS context for mqtts (or when a CA file is set), else None."""
        if self.scheme != "mqtts" and self.ca_file is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.certfile is not None:
            ctx.load_cert_chain(str(self.certfile), str(self.keyfile) if self.keyfile else None)
        return ctx

    def secret(self) -> str | None:
        """Return the password in clear, for the client library only."""
        return self.password.get_secret_value() if self.password else None


def attempts(cfg: BrokerConfig) -> list[Version]:
    """The protocol versions to try, in order ("auto": 5, then 3.1.1)."""
    return ["5", "3.1.1"] if cfg.protocol == "auto" else [cfg.protocol]


def check_tls(cfg: BrokerConfig, timeout_s: float = 10.0) -> None:
    """Do one TLS handshake with the broker's settings and close it (no-op without TLS).

    Why: paho leaks its socket when the handshake fails; a handshake of our own fails first,
    closes cleanly and names the cause.

    Raises:
        BrokerTLSError: The certificate did not verify or the handshake failed.
        BrokerError: The broker is unreachable.
    """
    ctx = cfg.tls_context()
    if ctx is None:
        return
    try:
        with (
            socket.create_connection((cfg.host, cfg.port), timeout=timeout_s) as raw,
            ctx.wrap_socket(raw, server_hostname=cfg.host),
        ):
            pass
    except ssl.SSLError as exc:
        raise BrokerTLSError(f"TLS failed (is the CA file right?): {exc}", url=cfg.url) from exc
    except ConnectionResetError as exc:
        raise BrokerTLSError(f"TLS failed (does the port speak TLS?): {exc}", url=cfg.url) from exc
    except OSError as exc:
        raise classify(exc, cfg.url) from exc
