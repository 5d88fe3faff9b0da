"""A seeded car fleet: the 18 sensor fields of the connected-car scenario, normal driving plus
injected failure modes, and the ground truth (`failure_occurred`) for every reading.

Field names, units and failure modes follow the HiveMQ/Kafka demo's simulator (see
shared/reference/iot-scenario.md) with its bugs fixed: battery voltage in volts, coolant not
clamped by the intake temperature, battery degradation actually used, failure rates low enough
that labels do not saturate, and `car_id` and `timestamp` in every reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

SENSOR_FIELDS = (
    "coolant_temp",  # °C
    "intake_air_temp",  # °C
    "intake_air_flow_speed",  # g/s
    "battery_percentage",  # %
    "battery_voltage",  # V
    "current_draw",  # A
    "speed",  # m/s
    "engine_vibration_amplitude",  # mV
    "throttle_pos",  # 0..1
    "tire_pressure11",  # psi, front left
    "tire_pressure12",  # front right
    "tire_pressure21",  # back left
    "tire_pressure22",  # back right
    "accelerometer11_value",  # m/s², per wheel
    "accelerometer12_value",
    "accelerometer21_value",
    "accelerometer22_value",
    "control_unit_firmware",
)
INT_FIELDS = frozenset(
    {
        "tire_pressure11",
        "tire_pressure12",
        "tire_pressure21",
        "tire_pressure22",
        "control_unit_firmware",
    }
)
WHEELS = ("11", "12", "21", "22")
TOPIC_PREFIX = "vehicles/sensor/data"
# Where the healthy reference fleet publishes (cars fresh from their service: the normal stream
# the autoencoder trains on); the bridge routes it to a Kafka topic of its own.
TRAINING_PREFIX = "vehicles/sensor/reference"


@dataclass(frozen=True)
class FailureRates:
    """Per-step probability that a mode starts in a car; modes are sticky once started."""

    shock_degradation: float = 0.0003  # per wheel
    tire_pressure_loss: float = 0.0002  # per wheel
    drive_shaft_vibration: float = 0.0004
    overheating: float = 0.0004
    outdated_firmware: float = 0.0002
    battery_degradation: float = 0.0004
    bump: float = 0.05  # a road bump (normal, all wheels): not a failure


# Cars that drive normally and never fail (road bumps still happen).
HEALTHY = FailureRates(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass
class Fleet:
    """`cars` cars stepping together; `step()` gives one reading per car."""

    cars: int
    seed: int
    rates: FailureRates = field(default_factory=FailureRates)
    start_ts: int = 1_567_606_196
    interval_s: int = 10

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)
        n = self.cars
        self.steps = 0
        self.speed = self.rng.uniform(8, 30, n)
        self.battery = self.rng.uniform(60, 100, n)
        self.shock = np.zeros((n, 4), dtype=bool)
        self.tire = np.zeros((n, 4), dtype=bool)
        self.vibration = np.zeros(n, dtype=bool)
        self.overheating = np.zeros(n, dtype=bool)
        self.firmware = np.zeros(n, dtype=bool)
        self.battery_bad = np.zeros(n, dtype=bool)

    def failed(self) -> np.ndarray:
        """Which cars have any failure mode (the ground-truth label)."""
        return (
            self.shock.any(axis=1)
            | self.tire.any(axis=1)
            | self.vibration
            | self.overheating
            | self.firmware
            | self.battery_bad
        )

    def step(self) -> list[dict[str, object]]:
        """One reading per car (sensor fields, `failure_occurred`, `car_id`, `timestamp`)."""
        rng, n, rates = self.rng, self.cars, self.rates
        self._start_failures()
        self.speed = np.clip(self.speed + rng.normal(0, 1.5, n), 5, 40)
        throttle = np.clip(self.speed / 40 + rng.normal(0, 0.05, n), 0, 1)
        current = 20 + 80 * throttle + rng.normal(0, 3, n)
        self.battery = np.clip(self.battery - current / 2000, 5, 100)
        intake = rng.normal(22, 3, n)
        coolant = intake + current * np.where(self.overheating, 2.5, 0.5) + rng.normal(0, 2, n)
        voltage = 300 + self.battery + rng.normal(0, 2, n) - np.where(self.battery_bad, 60, 0)
        vibration = self.speed * np.where(self.vibration, 180, 100) * rng.normal(1, 0.03, n)
        pressure = np.where(self.tire, rng.integers(20, 26, (n, 4)), rng.integers(30, 36, (n, 4)))
        bump = rng.random(n) < rates.bump
        accel = np.abs(rng.normal(0, 0.4, (n, 4))) + np.where(bump, 3.0, 0.0)[:, None]
        accel += np.where(self.shock, rng.uniform(8, 12, (n, 4)), 0.0)
        firmware = np.where(self.firmware, 1000, 2000)
        labels = self.failed()
        ts = self.start_ts + self.steps * self.interval_s
        self.steps += 1
        readings = []
        for car in range(n):
            values: list[float | int] = [
                coolant[car],
                intake[car],
                self.speed[car] * 1.8 + rng.normal(0, 0.5),
                self.battery[car],
                voltage[car],
                current[car],
                self.speed[car],
                vibration[car],
                throttle[car],
                *pressure[car].tolist(),
                *accel[car].tolist(),
                firmware[car],
            ]
            reading: dict[str, object] = {
                name: int(value) if name in INT_FIELDS else round(float(value), 4)
                for name, value in zip(SENSOR_FIELDS, values, strict=True)
            }
            reading["failure_occurred"] = "true" if labels[car] else "false"
            reading["car_id"] = car_id(car)
            reading["timestamp"] = ts
            readings.append(reading)
        return readings

    def _start_failures(self) -> None:
        rng, n, rates = self.rng, self.cars, self.rates
        self.shock |= rng.random((n, 4)) < rates.shock_degradation
        self.tire |= rng.random((n, 4)) < rates.tire_pressure_loss
        self.vibration |= rng.random(n) < rates.drive_shaft_vibration
        self.overheating |= rng.random(n) < rates.overheating
        self.firmware |= rng.random(n) < rates.outdated_firmware
        self.battery_bad |= rng.random(n) < rates.battery_degradation

    def run(self, steps: int) -> Iterator[dict[str, object]]:
        """`steps` readings of every car, step by step."""
        for _ in range(steps):
            yield from self.step()


def car_id(index: int) -> str:
    return f"electric-vehicle-{index:05d}"


def mqtt_topic(reading: dict[str, object], prefix: str = TOPIC_PREFIX) -> str:
    """The demo's MQTT topic: the car id is its last level (and not in the payload there)."""
    return f"{prefix}/{reading['car_id']}"


def features(readings: list[dict[str, object]]) -> np.ndarray:
    """The 18 sensor fields of each reading, float32, in schema order (what the bridge maps)."""
    return np.array([[reading[name] for name in SENSOR_FIELDS] for reading in readings], np.float32)


def payload(reading: dict[str, object]) -> bytes:
    return json.dumps(reading).encode()


def bridge_route(kafka_topic: str, prefix: str = TOPIC_PREFIX) -> dict[str, object]:
    """The bridge route of a fleet: 18 float32 features in schema order, JSON on Kafka, the
    car id (last topic level) as key, ground truth and timestamp as headers."""
    return {
        "topic_filter": f"{prefix}/+",
        "kafka_topic": kafka_topic,
        "format": "JSON",
        "fields": [{"field": name, "type": "float32"} for name in SENSOR_FIELDS],
        "header_fields": ["failure_occurred", "timestamp"],
    }
