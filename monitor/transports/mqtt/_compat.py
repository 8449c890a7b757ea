"""The quarantine: every access to a private attribute of paho-mqtt or aiomqtt, in one place.

The daemon's fast receive path (`reader`) and the simulator's batched publisher
(`publisher`) need hooks that neither library offers publicly. Each hook is one small
function here, and importing this module fails with one clear line when the installed
versions are outside the range these hooks were checked against, instead of misbehaving
later. Checked on paho-mqtt 2.2.0 and aiomqtt 2.5.1; the ranges below are the major
versions whose internals (``Client._in_packet``, ``_sock_recv``, ``_packet_queue``,
``_msgtime_mutex``, ``_last_bytes_received``; aiomqtt's ``_client`` and
``_disconnected``) have that shape. `tests/test_mqtt_quarantine.py` checks that no other
module of the transport reaches into either library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib.metadata import version

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

__all__ = [
    "CHECKED",
    "between_packets",
    "disconnected",
    "hook_reads",
    "incoming_length",
    "mark_received",
    "paho_client",
    "queue_raw_publish",
]

#: Versions the hooks were checked on, and the range (lowest, first excluded) accepted.
CHECKED: dict[str, tuple[str, tuple[int, int], tuple[int, int]]] = {
    "paho-mqtt": ("2.2.0", (2, 1), (3, 0)),
    "aiomqtt": ("2.5.1", (2, 5), (3, 0)),
}

RecvHook = Callable[[int], bytes]
LoopReadHook = Callable[[int], MQTTErrorCode]


def _major_minor(text: str) -> tuple[int, int]:
    parts = [*text.split("."), "0"][:2]
    return int("".join(c for c in parts[0] if c.isdigit()) or 0), int(
        "".join(c for c in parts[1] if c.isdigit()) or 0
    )


def check_versions(installed: Callable[[str], str] = version) -> None:
    """Raise ImportError when an installed library is outside the range checked here.

    Args:
        installed: Returns a distribution's version (importlib.metadata's, or a test's).
    """
    for dist, (checked, low, high) in CHECKED.items():
        have = installed(dist)
        if not low <= _major_minor(have) < high:
            raise ImportError(
                f"monitor's MQTT transport needs {dist} >={low[0]}.{low[1]},<{high[0]}.{high[1]} "
                f"(its internals were checked on {checked}); {have} is installed"
            )


check_versions()


def paho_client(client: aiomqtt.Client) -> paho.Client:
    """The paho client inside an aiomqtt 2.x client (``_client``)."""
    inner: paho.Client = client._client
    return inner


def disconnected(client: aiomqtt.Client) -> asyncio.Future[None]:
    """aiomqtt 2.x's future that completes when the connection is gone (``_disconnected``)."""
    done: asyncio.Future[None] = client._disconnected
    return done


def hook_reads(
    client: paho.Client, recv: RecvHook, loop_read: LoopReadHook
) -> tuple[RecvHook, LoopReadHook]:
    """Replace paho's socket read (``_sock_recv``) and ``loop_read``; return the originals."""
    old = client._sock_recv, client.loop_read
    client._sock_recv = recv  # type: ignore[method-assign,assignment]
    client.loop_read = loop_read  # type: ignore[method-assign,assignment]
    return old


def between_packets(client: paho.Client) -> bool:
    """True when paho holds no partly read packet (``_in_packet``)."""
    return bool(client._in_packet["command"] == 0)


def incoming_length(client: paho.Client) -> int | None:
    """The remaining length of the packet paho is reading, once its header is complete."""
    packet = client._in_packet
    if packet["command"] == 0 or not packet["have_remaining"]:
        return None
    return int(packet["remaining_length"])


def mark_received(client: paho.Client) -> None:
    """Tell paho's keepalive that a packet arrived (packets taken past paho's reader)."""
    with client._msgtime_mutex:
        client._last_bytes_received = paho.time_func()


def queue_raw_publish(client: paho.Client, packets: bytes) -> MQTTErrorCode:
    """Queue already encoded QoS 0 PUBLISH packets on paho's connection, in order."""
    # paho treats the queued bytes as one QoS 0 PUBLISH and writes them with everything else.
    rc: MQTTErrorCode = client._packet_queue(paho.PUBLISH, packets, 0, 0, paho.MQTTMessageInfo(0))
    return rc
