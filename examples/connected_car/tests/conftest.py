from mqtt_bridge.tests.conftest import mosquitto

__all__ = ["mosquitto"]
