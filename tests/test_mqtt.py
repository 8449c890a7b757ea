"""monitor.transports.mqtt: broker URLs, connecting with either protocol, fallback, clear errors."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.engine.transport import PublishRefused
from monitor.transports.mqtt.client import connect
from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.errors import BrokerAuthError, BrokerError, BrokerTLSError
from monitor.transports.mqtt.publisher import SyncPublisher
from tests.support.mosquitto import Mosquitto, free_port


@pytest.mark.parametrize(
    ("url", "host", "port", "user", "password"),
    [
        ("mqtt://127.0.0.1:1883", "127.0.0.1", 1883, None, None),
        ("mqtt://broker.local", "broker.local", 1883, None, None),
        ("mqtts://broker.local", "broker.local", 8883, None, None),
        ("mqtts://broker.local:9999/", "broker.local", 9999, None, None),
        ("mqtt://alice:s%40cret@h:1884", "h", 1884, "alice", "s@cret"),
        ("mqtt://[::1]:1883", "::1", 1883, None, None),
    ],
)
def test_url_parsing(
    url: str, host: str, port: int, user: str | None, password: str | None
) -> None:
    """A broker URL yields host, port (1883/8883 by default) and the URL's credentials."""
    cfg = BrokerConfig(url=url)
    assert (cfg.host, cfg.port, cfg.username, cfg.secret()) == (host, port, user, password)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:1883", "scheme must be mqtt or mqtts"),
        ("mqtt://:1883", "no host"),
        ("mqtt://h:notaport", "bad port"),
        ("mqtt://h:70000", "bad port"),
        ("mqtt://h:1883/topic", "must not have a path"),
    ],
)
def test_url_rejected(url: str, message: str) -> None:
    """A malformed broker URL fails validation with a message naming the problem."""
    with pytest.raises(ValidationError, match=message):
        BrokerConfig(url=url)


def test_explicit_credentials_override_url_and_password_is_hidden() -> None:
    """Explicit username/password win over the URL's; the password never shows in repr."""
    cfg = BrokerConfig(url="mqtt://u1:p1@h:1883", username="u2", password="p2")
    assert (cfg.username, cfg.secret(), cfg.url) == ("u2", "p2", "mqtt://h:1883")
    hidden = BrokerConfig(url="mqtt://u1:topsecret@h")
    assert "topsecret" not in repr(hidden)
    assert "topsecret" not in str(hidden.model_dump())


async def _roundtrip(cfg: BrokerConfig) -> tuple[str, list[bytes]]:
    async with connect(cfg) as conn:
        await conn.client.subscribe("t/#", qos=1)
        await conn.client.publish("t/a", b"one", qos=1)
        await conn.client.publish("t/b", b"two", qos=0)
        messages = conn.client.messages
        got = [
            bytes((await asyncio.wait_for(anext(messages), 5)).payload)  # type: ignore[arg-type]
            for _ in range(2)
        ]
        return conn.protocol, got


@pytest.mark.mqtt
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_connect_publish_receive(mosquitto: Mosquitto, protocol: str) -> None:
    """connect() talks the requested protocol version; messages come back through the queue."""
    cfg = BrokerConfig(url=mosquitto.url, protocol=protocol)  # type: ignore[arg-type]
    assert asyncio.run(_roundtrip(cfg)) == (protocol, [b"one", b"two"])


@pytest.mark.mqtt
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_sync_publisher_many_and_single(mosquitto: Mosquitto, protocol: str) -> None:
    """SyncPublisher delivers batched QoS 0 and single QoS 1 messages in order, intact."""
    payloads = [f"m{i}".encode() * (i % 300 + 1) for i in range(2000)]

    async def main() -> list[bytes]:
        cfg = BrokerConfig(url=mosquitto.url, protocol=protocol)  # type: ignore[arg-type]
        async with connect(cfg) as conn:
            await conn.client.subscribe("s/#", qos=1)
            pub = SyncPublisher(BrokerConfig(url=mosquitto.url, protocol=protocol))  # type: ignore[arg-type]
            assert await asyncio.to_thread(pub.connect) == protocol
            pub.publish_many([(f"s/{i % 7}", p) for i, p in enumerate(payloads)])
            pub.publish("s/last", b"end", qos=1)
            await asyncio.to_thread(pub.close)
            messages = conn.client.messages
            return [
                bytes((await asyncio.wait_for(anext(messages), 5)).payload)  # type: ignore[arg-type]
                for _ in range(len(payloads) + 1)
            ]

    assert asyncio.run(main()) == [*payloads, b"end"]


@pytest.mark.mqtt
def test_auto_falls_back_to_311_on_amqtt() -> None:
    """protocol=auto connects to amqtt (MQTT 3.1.1 only) with 3.1.1, async and sync."""
    from amqtt.broker import Broker

    async def main() -> tuple[str, str]:
        port = free_port()
        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await broker.start()
        try:
            cfg = BrokerConfig(url=f"mqtt://127.0.0.1:{port}")
            async with connect(cfg) as conn:
                used = conn.protocol
            pub = SyncPublisher(cfg)
            used_sync = await asyncio.to_thread(pub.connect)
            await asyncio.to_thread(pub.close)
        finally:
            await broker.shutdown()
        return used, used_sync

    assert asyncio.run(main()) == ("3.1.1", "3.1.1")


@pytest.fixture
def locked_broker(tmp_path: Path) -> Mosquitto:
    """A Mosquitto that requires user `sim` with password `right`."""
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "sim", "right"], check=True)
    pwfile.chmod(0o600)
    broker = Mosquitto(
        workdir=tmp_path / "mq", allow_anonymous=False, extra_config=f"password_file {pwfile}"
    )
    broker.start()
    return broker


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto where user `monitor` may write `alerts/ok` and nothing else."""
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "monitor", "pw"], check=True)
    pwfile.chmod(0o600)
    (tmp_path / "acl").write_text("user monitor\ntopic read alerts/#\ntopic write alerts/ok\n")
    broker = Mosquitto(
        workdir=tmp_path / "mq",
        allow_anonymous=False,
        extra_config=f"password_file {pwfile}\nacl_file {tmp_path / 'acl'}",
    )
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.mqtt
@pytest.mark.parametrize("qos", [1, 0])
def test_a_publication_the_broker_refuses_is_not_taken_for_delivered(
    acl_broker: Mosquitto, qos: int
) -> None:
    """MQTT 5: the broker answers a publication outside the user's ACL with the reason
    code "Not authorized"; `Connection.publish` raises `PublishRefused` for it instead of
    returning True (aiomqtt's publish drops the code: a refused alert was counted as
    delivered). An allowed topic is delivered as before; with QoS 0 there is no
    acknowledgement to refuse it, and MQTT 3.1.1 brokers acknowledge what they drop."""

    async def main(protocol: str) -> list[object]:
        url = f"mqtt://monitor:pw@127.0.0.1:{acl_broker.port}"
        cfg = BrokerConfig(url=url, protocol=protocol)  # type: ignore[arg-type]
        out: list[object] = []
        async with connect(cfg) as conn:
            await conn.client.subscribe("alerts/#", qos=1)
            for topic in ("alerts/p1", "alerts/ok"):
                try:
                    out.append(await conn.publish(topic, b"{}", qos))
                except PublishRefused as exc:
                    out.append((exc.reason, exc.detail))
            got = await asyncio.wait_for(anext(conn.client.messages), 5)
            out.append(str(got.topic))
        return out

    refused = ("not_authorized", "Not authorized") if qos else True
    assert asyncio.run(main("5")) == [refused, True, "alerts/ok"]
    assert asyncio.run(main("3.1.1")) == [True, True, "alerts/ok"]


@pytest.mark.mqtt
def test_tls_to_plain_listener_is_tls_error(mosquitto: Mosquitto) -> None:
    """mqtts:// against a listener without TLS fails as BrokerTLSError, not a hang."""
    cfg = BrokerConfig(url=f"mqtts://127.0.0.1:{mosquitto.port}", protocol="3.1.1")
    with pytest.raises(BrokerTLSError, match="TLS failed"):
        SyncPublisher(cfg, timeout_s=3).connect()


@pytest.mark.mqtt
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_wrong_password_is_auth_error(locked_broker: Mosquitto, protocol: str) -> None:
    """A wrong password raises BrokerAuthError (both clients); the right one connects."""
    try:
        bad = BrokerConfig(
            url=f"mqtt://sim:wrong@127.0.0.1:{locked_broker.port}", protocol=protocol
        )  # type: ignore[arg-type]
        with pytest.raises(BrokerAuthError, match="refused the login"):
            SyncPublisher(bad).connect()

        async def attempt(cfg: BrokerConfig) -> str:
            async with connect(cfg) as conn:
                return conn.protocol

        with pytest.raises(BrokerAuthError):
            asyncio.run(attempt(bad))
        good = bad.model_copy(update={"password": bad.password.__class__("right")})
        assert asyncio.run(attempt(good)) == protocol
    finally:
        locked_broker.stop()


def _make_ca_and_server_cert(d: Path) -> None:
    """Write ca.crt and a server certificate for IP 127.0.0.1 signed by it, with openssl."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = ["openssl", "req", *ec, "-subj"]
    subprocess.run(
        [
            *run,
            "/CN=test-ca",
            "-x509",
            "-days",
            "1",
            "-keyout",
            str(d / "ca.key"),
            "-out",
            str(d / "ca.crt"),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*run, "/CN=127.0.0.1", "-keyout", str(d / "srv.key"), "-out", str(d / "srv.csr")],
        check=True,
        capture_output=True,
    )
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(d / "srv.csr"),
            "-CA",
            str(d / "ca.crt"),
            "-CAkey",
            str(d / "ca.key"),
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            str(d / "ext"),
            "-out",
            str(d / "srv.crt"),
        ],
        check=True,
        capture_output=True,
    )


@pytest.mark.mqtt
def test_tls_verifies_the_broker_certificate(tmp_path: Path) -> None:
    """mqtts with the broker's CA connects; without it (system store) it is a BrokerTLSError."""
    _make_ca_and_server_cert(tmp_path)
    broker = Mosquitto(
        workdir=tmp_path / "mq",
        listener_extra=f"cafile {tmp_path / 'ca.crt'}\ncertfile {tmp_path / 'srv.crt'}\n"
        f"keyfile {tmp_path / 'srv.key'}",
    )
    broker.start()
    try:
        url = f"mqtts://127.0.0.1:{broker.port}"
        pub = SyncPublisher(BrokerConfig(url=url, ca_file=tmp_path / "ca.crt"))
        assert pub.connect() == "5"
        pub.close()
        with pytest.raises(BrokerTLSError, match="CERTIFICATE_VERIFY_FAILED"):
            SyncPublisher(BrokerConfig(url=url)).connect()

        async def attempt() -> str:
            async with connect(BrokerConfig(url=url, protocol="3.1.1")) as conn:
                return conn.protocol

        with pytest.raises(BrokerTLSError, match="CERTIFICATE_VERIFY_FAILED"):
            asyncio.run(attempt())
    finally:
        broker.stop()


@pytest.mark.mqtt
def test_unreachable_broker_is_broker_error() -> None:
    """Nothing listening: BrokerError naming the URL."""
    cfg = BrokerConfig(url=f"mqtt://127.0.0.1:{free_port()}")
    with pytest.raises(BrokerError, match=r"cannot connect.*127\.0\.0\.1"):
        SyncPublisher(cfg).connect()


@pytest.mark.mqtt
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_persistent_session_keeps_messages_while_away(mosquitto: Mosquitto, protocol: str) -> None:
    """clean_session=False (plus session expiry on MQTT 5) gets what was queued while away."""
    cfg = BrokerConfig(url=mosquitto.url, protocol=protocol, client_id=f"keep-{protocol}")  # type: ignore[arg-type]

    async def main() -> bytes:
        async with connect(cfg, clean_session=False, session_expiry_s=60) as conn:
            await conn.client.subscribe("q/#", qos=1)
        pub = SyncPublisher(BrokerConfig(url=mosquitto.url))
        await asyncio.to_thread(pub.connect)
        pub.publish("q/1", b"while-away", qos=1)
        await asyncio.to_thread(pub.close)
        async with connect(cfg, clean_session=False, session_expiry_s=60) as conn:
            msg = await asyncio.wait_for(anext(conn.client.messages), 5)
            return bytes(msg.payload)  # type: ignore[arg-type]

    assert asyncio.run(main()) == b"while-away"


def test_persistent_session_needs_client_id() -> None:
    """Asking for a persistent session without a client id fails before connecting."""

    async def main() -> None:
        async with connect(BrokerConfig(), clean_session=False):
            pass

    with pytest.raises(ValueError, match="needs a fixed client_id"):
        asyncio.run(main())
