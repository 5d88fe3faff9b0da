"""An inference's visualization configuration, and the live stream of its predictions (SSE)."""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import renderers, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.apps.inferences.selectors import inference_get
from backend.apps.visualization import live, services
from backend.apps.visualization.models import VisualizationType
from backend.kafkaml_backend.errors import ApplicationError
from backend.kafkaml_backend.schema import ErrorBody
from kafkaml.kafka import make_consumer


class LabelSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField(min_value=0, max_value=100_000)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", help_text="#rrggbb")
    label = serializers.CharField(max_length=100)  # type: ignore[assignment]  # a declared field, not Field.label


class VisualizationSerializer(serializers.Serializer[Any]):
    type = serializers.ChoiceField(choices=VisualizationType.choices)
    labels = LabelSerializer(many=True, max_length=1000)  # type: ignore[call-arg]  # passed to ListSerializer
    average_updated = serializers.BooleanField(default=False)
    average_window = serializers.IntegerField(min_value=1, max_value=10_000_000, default=10_000)

    def validate_labels(self, labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [label["id"] for label in labels]
        if len(ids) != len(set(ids)):
            raise serializers.ValidationError("Each label id (output position) appears once.")
        return labels


class VisualizationApi(APIView):
    @extend_schema(responses=VisualizationSerializer, operation_id="inferences_visualization")
    def get(self, request: Request, pk: int) -> Response:
        inference = inference_get(user=request.user, inference_id=pk)
        return Response(
            VisualizationSerializer(services.visualization_get(inference=inference)).data
        )

    @extend_schema(
        request=VisualizationSerializer,
        responses=VisualizationSerializer,
        operation_id="inferences_visualization_set",
    )
    def put(self, request: Request, pk: int) -> Response:
        inference = inference_get(user=request.user, inference_id=pk)
        serializer = VisualizationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        stored = services.visualization_set(inference=inference, **serializer.validated_data)
        return Response(VisualizationSerializer(stored).data)


class TooManyStreamsError(ApplicationError):
    status_code = 503


# Streams hold a server thread each: a per-process cap keeps threads free for the API.
_streams = threading.BoundedSemaphore(settings.KAFKAML.live_streams_max)


class EventStreamRenderer(renderers.BaseRenderer):
    """Lets EventSource's `Accept: text/event-stream` through; errors still go out as JSON."""

    media_type = "text/event-stream"
    format = "sse"
    charset = "utf-8"

    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None
    ) -> bytes:
        return renderers.JSONRenderer().render(data)


class VisualizationStreamApi(APIView):
    """Server-sent events with the inference's predictions, aggregated per interval (owner only).

    Events: `ready`, then `update` with `{count, skipped, classes: {class: n}, last_class, last,
    mean}` at most once per `KAFKAML_LIVE_UPDATE_INTERVAL_S`. The stream ends after
    `KAFKAML_LIVE_STREAM_MAX_S`; EventSource reconnects by itself.
    """

    renderer_classes = [renderers.JSONRenderer, EventStreamRenderer]

    @extend_schema(
        responses={
            (200, "text/event-stream"): OpenApiTypes.STR,
            503: OpenApiResponse(
                ErrorBody, description="Too many live streams open on this server."
            ),
        },
        operation_id="inferences_visualization_stream",
    )
    def get(self, request: Request, pk: int) -> StreamingHttpResponse:
        inference = inference_get(user=request.user, inference_id=pk)
        if not _streams.acquire(blocking=False):
            raise TooManyStreamsError(
                "Too many live views are open on this server; close one and retry.",
                {"limit": settings.KAFKAML.live_streams_max},
            )
        kafka = settings.KAFKA.with_bootstrap(inference.output_bootstrap or None)
        try:
            consumer = make_consumer(kafka, enable_auto_commit=False)
        except Exception:
            _streams.release()
            raise
        response = StreamingHttpResponse(
            _released(
                live.stream_updates(
                    consumer,
                    inference.output_topic,
                    interval_s=settings.KAFKAML.live_update_interval_s,
                    max_duration_s=settings.KAFKAML.live_stream_max_s,
                )
            ),
            content_type="text/event-stream",
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx in front must not buffer the stream
        return response


def _released(events: Any) -> Any:
    """Yield the events; give the stream's slot back however the stream ends."""
    try:
        yield from events
    finally:
        events.close()
        _streams.release()
