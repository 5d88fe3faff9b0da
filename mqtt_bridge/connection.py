"""The bridge's MQTT client: protocol version, persistent session, TLS, credentials, manual acks.

`BridgeClient` is paho's client with its per-message costs on the hot path removed (measured
with a per-thread CPU profile of a 100,000-message drain; paho's handling was half the bridge's
CPU, and MQTT 5's per-message `Properties` object alone a third of it):
- reading: paho reads each packet with three or more `recv` calls (1 byte of command, the
  length byte by byte, then the body), handles one packet per `select` wake-up, and builds an
  `MQTTMessage` with a `Properties` object for each PUBLISH. Here the socket is read in 64 KiB
  chunks, every whole packet in them is framed at once, and a plain QoS 0/1 PUBLISH (MQTT 5:
  with no properties) goes to `on_messages` as a tuple, one call per chunk. Any other packet
  (CONNACK, SUBACK, a PUBLISH with properties, QoS 2, ...) goes through paho's own handling,
  after the PUBLISHes before it, so the order of arrival is kept.
- acknowledging: `Client.ack` queues one PUBACK packet per message and wakes the network thread
  through its socket pair each time; `ack_many` queues the PUBACKs of a batch as one write.
- threads: `serve` runs one round of the network loop in the caller's thread, so the bridge
  reads, maps, produces and acknowledges in one thread (no `loop_start`), with paho's
  reconnecting kept; `close` sends what is queued and DISCONNECT without reading more.
"""

from __future__ import annotations

import logging
import select
import ssl
import struct
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from paho.mqtt.client import PUBACK, PUBLISH, Client, MQTTv5, time_func
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.enums import _ConnectionState as ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_bridge.settings import BridgeSettings

if TYPE_CHECKING:
    from paho.mqtt.client import _InPacket

log = logging.getLogger(__name__)
_GIVEN_UP = (ConnectionState.MQTT_CS_DISCONNECTING, ConnectionState.MQTT_CS_DISCONNECTED)
READ_CHUNK = 65_536
READ_CHUNKS = 16  # chunks read per wake-up at most, so writes (acks) are not starved
# (topic, payload, message id, QoS, DUP flag) of one PUBLISH, in order of arrival
Received = tuple[str, bytes, int, int, bool]
OnMessages = Callable[[list[Received]], object]


class BridgeClient(Client):
    """paho's Client reading in chunks, handing PUBLISHes over in batches and acknowledging in
    batches (see the module doc). Without `on_messages` it behaves as paho's Client.

    It overrides paho 2.1's private `_sock_close` and its `loop_read`, and feeds paho's
    `_packet_handle` through `_in_packet`: paho is pinned in requirements/constraints.txt, and
    the bridge's tests run on a real Mosquitto.
    """

    on_messages: OnMessages | None = None  # takes the PUBLISHes of a chunk, in order
    _unread = b""  # the start of a packet whose rest has not arrived yet
    _reconnect_at = 0.0  # serve: when to try (re)connecting next (time.monotonic)

    def serve(self, timeout: float) -> None:
        """One round of the network loop in the caller's thread, instead of `loop_start`'s:
        wait up to `timeout` s for the socket, read (PUBLISHes go to `on_messages`), write,
        keep the connection alive. Without a connection it connects, or waits until the next
        attempt is due (`reconnect_delay_set`'s delay, doubling, as `loop_forever` does).
        Never raises for a lost or refused connection; `on_connect` reports the outcome.
        """
        if self._sock is None:
            if self._state not in _GIVEN_UP:
                self._connect_when_due(timeout)
            return
        rc = self._loop(timeout)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._state not in _GIVEN_UP:
            self._reconnect_later()

    def _connect_when_due(self, timeout: float) -> None:
        wait = self._reconnect_at - time.monotonic()
        if wait > 0:
            time.sleep(min(wait, timeout))
            return
        try:
            self.reconnect()
        except OSError as error:
            log.warning("MQTT connection to %s:%s failed: %s", self._host, self._port, error)
            self._handle_on_connect_fail()
            self._reconnect_later()

    def _reconnect_later(self) -> None:
        with self._reconnect_delay_mutex:
            delay = self._reconnect_delay
            delay = self._reconnect_min_delay if delay is None else 2 * delay
            self._reconnect_delay = min(delay, self._reconnect_max_delay)
        self._reconnect_at = time.monotonic() + self._reconnect_delay

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is queued (the last PUBACKs), then DISCONNECT; read nothing more.
        For a client driven by `serve`; gives up after `timeout_s` (what was not sent is as
        if the connection had been lost: the broker resends the messages not acknowledged)."""
        self.disconnect()
        deadline = time.monotonic() + timeout_s
        while self._sock is not None and self.want_write():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            select.select([], [self._sock], [], left)
            if self.loop_write() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        self._sock_close()
        self._state = ConnectionState.MQTT_CS_DISCONNECTED

    def _sock_close(self) -> None:
        self._unread = b""  # a new connection starts afresh
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Read what has arrived (up to READ_CHUNKS chunks) and handle every whole packet."""
        for _ in range(READ_CHUNKS):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            try:
                data = self._sock_recv(READ_CHUNK)
            except BlockingIOError:
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            except OSError as error:  # timeouts and resets included
                log.warning("MQTT connection lost while reading: %s", error)
                return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
            if not data:
                return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
            rc = self._handle_data(self._unread + data if self._unread else data)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return self._loop_rc_handle(rc)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_data(self, data: bytes) -> MQTTErrorCode:
        """Handle the whole packets in `data`; keep the incomplete rest for the next read."""
        size, position = len(data), 0
        batch: list[Received] = []
        fast = self.on_messages is not None
        v5 = self._protocol == MQTTv5
        while position + 2 <= size:
            command, length, start = data[position], 0, position + 1
            for shift in (0, 7, 14, 21):  # the remaining length: 1 to 4 bytes
                if start == size:
                    length = -1  # not all of it has arrived
                    break
                byte = data[start]
                start += 1
                length |= (byte & 127) << shift
                if byte < 128:
                    break
            else:
                return MQTTErrorCode.MQTT_ERR_PROTOCOL
            end = start + length
            if length < 0 or end > size:
                break
            position = end
            if fast and command & 0xF0 == PUBLISH and command & 0x06 != 0x04:
                received = _plain_publish(data, command, start, end, v5)
                if received is not None:
                    batch.append(received)
                    continue
            if batch:
                self._hand_over(batch)
                batch = []
            rc = self._handle_packet(command, data[start:end])
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return rc
        self._unread = data[position:]
        if batch:
            self._hand_over(batch)
        with self._msgtime_mutex:
            self._last_msg_in = time_func()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _hand_over(self, batch: list[Received]) -> None:
        assert self.on_messages is not None
        with self._in_callback_mutex:
            self.on_messages(batch)

    def _handle_packet(self, command: int, body: bytes) -> MQTTErrorCode:
        """One whole packet through paho's own handling (it reads `_in_packet`)."""
        self._in_packet = _in_packet(command, body)
        try:
            return self._packet_handle()
        finally:
            self._in_packet = _in_packet(0, b"")

    def ack_many(self, mids: Sequence[int]) -> None:
        """Acknowledge QoS 1 messages by id, in this order, as one write."""
        if mids:
            packets = b"".join([struct.pack("!BBH", PUBACK, 2, mid) for mid in mids])
            self._packet_queue(PUBACK, packets, 0, 0)


def _plain_publish(data: bytes, command: int, start: int, end: int, v5: bool) -> Received | None:
    """The QoS 0/1 PUBLISH packet whose body is data[start:end], or None where paho's own
    handling is needed: MQTT 5 properties (or a topic alias), a topic that is not UTF-8, a
    packet too short for its fields."""
    if end - start < 2:
        return None
    qos = (command >> 1) & 3
    topic_end = start + 2 + ((data[start] << 8) | data[start + 1])
    body = topic_end + (2 if qos else 0)
    if topic_end == start + 2 or body + v5 > end:
        return None
    mid = (data[topic_end] << 8) | data[topic_end + 1] if qos else 0
    if v5:
        if data[body] != 0:  # the properties' length
            return None
        body += 1
    try:
        topic = data[start + 2 : topic_end].decode()
    except UnicodeDecodeError:
        return None
    return topic, data[body:end], mid, qos, bool(command & 0x08)


def _in_packet(command: int, body: bytes) -> _InPacket:
    """paho's record of a packet being read, here a whole one."""
    return {
        "command": command,
        "have_remaining": 1 if command else 0,
        "remaining_count": [],
        "remaining_mult": 1,
        "remaining_length": len(body),
        "packet": bytearray(body),
        "to_process": 0,
        "pos": 0,
    }


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
