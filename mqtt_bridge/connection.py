"""The bridge's MQTT client: protocol version, persistent session, TLS, credentials, manual acks.

`BridgeClient` is paho's client with two per-message costs removed (measured with py-spy at
~10k msg/s, where paho's network thread was the bottleneck):
- reading: paho reads each packet with three or more `recv` calls (1 byte of command, the
  length byte by byte, then the body) and handles one packet per `select` wake-up when it has no
  QoS 2 traffic; here the socket is read in 64 KiB chunks and every whole packet in them is
  handled in one wake-up.
- acknowledging: `Client.ack` queues one PUBACK packet per message and wakes the network thread
  through its socket pair each time; `ack_many` queues the PUBACKs of a batch as one write.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Sequence

from paho.mqtt.client import PUBACK, Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_bridge.settings import BridgeSettings

READ_CHUNK = 65_536
READ_BURST = 10_000  # packets handled per wake-up at most, so writes (acks) are not starved


class BridgeClient(Client):
    """paho's Client reading in chunks and acknowledging in batches (see the module doc).

    It overrides paho 2.1's private `_sock_recv`, `_sock_close` and `loop_read`: paho is pinned
    in requirements/constraints.txt, and the bridge's tests run on a real Mosquitto.
    """

    _read_buffer = b""
    _read_position = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_position >= len(self._read_buffer):
            data = super()._sock_recv(READ_CHUNK)  # BlockingIOError when nothing is there
            if not data:
                return data  # the connection closed
            self._read_buffer, self._read_position = data, 0
        start = self._read_position
        self._read_position = min(start + bufsize, len(self._read_buffer))
        return self._read_buffer[start : self._read_position]

    def _sock_close(self) -> None:
        self._read_buffer, self._read_position = b"", 0  # a new connection starts afresh
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle every whole packet that has arrived, not just one: the buffered ones always
        (select would not wake for them), new chunks until READ_BURST packets were handled."""
        handled = 0
        while self._sock is not None:
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            handled += 1
            if handled >= READ_BURST and self._read_position >= len(self._read_buffer):
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        return MQTTErrorCode.MQTT_ERR_NO_CONN

    def ack_many(self, mids: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages by id, in this order, as one write."""
        if mids:
            packets = b"".join([struct.pack("!BBH", PUBACK, 2, mid) for mid in mids])
            self._packet_queue(PUBACK, packets, 0, 0)


def make_client(settings: BridgeSettings) -> BridgeClient:
    """A paho client that acknowledges only when told (`client.ack`), with a persistent session.

    MQTT 3.1.1: clean_session False. MQTT 5: clean_start False on connect plus a session expiry
    (see `connect`). Nothing is sent before `connect`.
    """
    v5 = settings.protocol == "5"
    client = BridgeClient(
        CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        clean_session=None if v5 else False,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        manual_ack=True,
    )
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls:
        client.tls_set(
            ca_certs=str(settings.tls_ca_file) if settings.tls_ca_file else None,
            certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
            keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    # The broker resends what was not acknowledged when the bridge reconnects.
    client.reconnect_delay_set(min_delay=1, max_delay=10)
    return client


def connect(client: Client, settings: BridgeSettings) -> None:
    """Start connecting in the background (paho's loop reconnects after a lost connection)."""
    if settings.protocol == "5":
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = settings.session_expiry_s
        client.connect_async(
            settings.host,
            settings.port,
            keepalive=settings.keepalive_s,
            clean_start=False,
            properties=properties,
        )
    else:
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
