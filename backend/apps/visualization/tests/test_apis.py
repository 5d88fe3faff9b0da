"""An inference's visualization: the stored, validated configuration and its live stream."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from backend.apps.inferences.services import InferenceSettings, inference_create
from backend.apps.visualization.live import Window, prediction_values, stream_updates
from backend.testing import finished_result, stored_model
from kafkaml.kafka import KafkaSettings, make_consumer, make_producer

KAFKA_ML_CONFIG = {
    "type": "classification",
    "average_updated": False,
    "average_window": 10000,
    "labels": [
        {"id": 0, "color": "#fff100", "label": "Zero"},
        {"id": 1, "color": "#ff0000", "label": "One"},
    ],
}


def an_inference(user: Any, summaries: dict[str, Any], output_topic: str = "out") -> Any:
    result = finished_result(user, stored_model(user, summaries), b"model")
    settings = InferenceSettings(
        replicas=1, input_format="RAW", input_config={}, input_topic="in",
        output_topic=output_topic,
    )  # fmt: skip
    return inference_create(owner=user, result=result, settings=settings)


@pytest.mark.django_db
def test_a_kafka_ml_configuration_is_stored_with_the_inference_and_read_back(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    inference = an_inference(user, summaries)
    url = f"/api/inferences/{inference.pk}/visualization"
    assert api.get(url).json()["labels"] == []
    assert api.put(url, KAFKA_ML_CONFIG, format="json").status_code == 200
    assert api.get(url).json() == KAFKA_ML_CONFIG


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "pie"}, "type"),
        ({"labels": [{"id": 0, "color": "yellow", "label": "Zero"}]}, "labels.0.color"),
        ({"labels": [KAFKA_ML_CONFIG["labels"][0]] * 2}, "labels"),  # type: ignore[index]
        ({"average_window": 0}, "average_window"),
    ],
)
def test_an_invalid_configuration_is_refused_at_its_field(
    api: APIClient, user: Any, summaries: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    inference = an_inference(user, summaries)
    response = api.put(
        f"/api/inferences/{inference.pk}/visualization",
        {**KAFKA_ML_CONFIG, **change},
        format="json",
    )
    assert response.status_code == 400
    fields = response.json()["extra"]["fields"]
    head, *rest = field.split(".")
    found = fields[head]
    for part in rest:
        found = found[int(part)] if isinstance(found, list) else found[part]
    assert found


@pytest.mark.django_db
def test_only_the_owner_sees_the_configuration_and_the_stream(
    other_api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    inference = an_inference(user, summaries)
    base = f"/api/inferences/{inference.pk}/visualization"
    assert other_api.get(base).status_code == 404
    assert other_api.put(base, KAFKA_ML_CONFIG, format="json").status_code == 404
    assert other_api.get(f"{base}/stream", HTTP_ACCEPT="text/event-stream").status_code == 404
    assert Client().get(f"{base}/stream", HTTP_ACCEPT="text/event-stream").status_code == 401


def test_a_prediction_record_is_flattened_and_anything_else_is_skipped() -> None:
    assert prediction_values(b'{"values": [[0.1, 0.9]]}') == [0.1, 0.9]
    assert prediction_values(b'{"values": [1, 2, 3]}') == [1.0, 2.0, 3.0]
    for bad in (b"", b"not json", b'{"values": "x"}', b"[1, 2]", b'{"values": [true]}'):
        assert prediction_values(bad) == []
    window = Window()
    for values in ([0.1, 0.9], [0.8, 0.2], [0.3, 0.7], []):
        window.add(values)
    update = window.update()
    assert (update["count"], update["skipped"]) == (3, 1)
    assert update["classes"] == {"0": 1, "1": 2}
    assert update["last_class"] == 1
    assert update["mean"] == pytest.approx([0.4, 0.6])


def test_the_stream_sends_what_arrives_after_it_opened_folded_into_bounded_updates(
    kafka_settings: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=2)
    producer = make_producer(kafka_settings)
    producer.produce(topic, b'{"values": [9.0, 0.0]}', partition=0)  # before: never shown
    producer.flush(10)
    events = stream_updates(
        make_consumer(kafka_settings, enable_auto_commit=False), topic,
        interval_s=0.5, max_duration_s=60,
    )  # fmt: skip
    assert next(events).startswith("retry: 1000\nevent: ready")

    def produce() -> None:
        time.sleep(1)
        for index in range(3000):
            value = [0.2, 0.8] if index % 3 else [0.9, 0.1]
            producer.produce(topic, json.dumps({"values": value}).encode(), partition=index % 2)
        producer.flush(10)

    threading.Thread(target=produce, daemon=True).start()
    updates, seen, started = [], 0, time.monotonic()
    while seen < 3000 and time.monotonic() - started < 60:
        event = next(events)
        if event.startswith("event: update"):
            update = json.loads(event.split("data: ", 1)[1])
            updates.append(update)
            seen += update["count"]
    events.close()
    assert seen == 3000
    assert len(updates) < 3000 / 100  # aggregated, not one event per prediction
    totals = {"0": 0, "1": 0}
    for update in updates:
        for key, count in update["classes"].items():
            totals[key] += count
    assert totals == {"0": 1000, "1": 2000}
