"""The bridge's MQTT client: protocol version, persistent session, TLS, credentials, manual acks."""

from __future__ import annotations

import ssl

from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_bridge.settings import BridgeSettings


def make_client(settings: BridgeSettings) -> Client:
    """A paho client that acknowledges only when told (`client.ack`), with a persistent session.

    MQTT 3.1.1: clean_session False. MQTT 5: clean_start False on connect plus a session expiry
    (see `connect`). Nothing is sent before `connect`.
    """
    v5 = settings.protocol == "5"
    client = Client(
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
