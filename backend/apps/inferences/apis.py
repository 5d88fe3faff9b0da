"""REST endpoints of inferences."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.core.validators import RegexValidator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.apps.inferences import selectors, services
from backend.apps.inferences.models import Delivery, Inference
from backend.apps.training.apis import LogsOutput
from backend.apps.training.selectors import result_get
from backend.kafkaml_backend.runners import JobKind, get_runner
from backend.kafkaml_backend.validation import ID_MAX, FiniteFloatField, JsonObjectField, validated

INPUT_FORMATS = ["RAW", "AVRO", "JSON", "TELEGRAF_STR_JSON"]
topic_name = RegexValidator(r"^[a-zA-Z0-9._-]{1,249}$", "Not a valid Kafka topic name.")
bootstrap = RegexValidator(
    r"^[A-Za-z0-9.\-\[\]:]+(,[A-Za-z0-9.\-\[\]:]+)*$", "Expected host:port[,host:port...]."
)


class InferenceOutput(serializers.ModelSerializer[Inference]):
    result_id = serializers.IntegerField()

    class Meta:
        model = Inference
        fields = [
            "id",
            "result_id",
            "model_version",
            "status",
            "replicas",
            "input_format",
            "input_config",
            "input_topic",
            "output_topic",
            "input_bootstrap",
            "output_bootstrap",
            "upper_bootstrap",
            "upper_topic",
            "limit",
            "delivery",
            "error",
            "ready_replicas",
            "restarts",
            "last_exit_reason",
            "created_at",
            "updated_at",
        ]


class InferenceCreateInput(serializers.Serializer[Any]):
    result_id = serializers.IntegerField(min_value=1, max_value=ID_MAX)
    replicas = serializers.IntegerField(min_value=1, max_value=100, default=1)
    input_format = serializers.ChoiceField(choices=INPUT_FORMATS)
    input_config = JsonObjectField(default=dict)
    input_topic = serializers.CharField(validators=[topic_name])
    output_topic = serializers.CharField(validators=[topic_name])
    input_bootstrap = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=1000, validators=[bootstrap]
    )
    output_bootstrap = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=1000, validators=[bootstrap]
    )
    upper_bootstrap = serializers.CharField(
        required=False, default="", allow_blank=True, max_length=1000, validators=[bootstrap]
    )
    upper_topic = serializers.CharField(
        required=False, default="", allow_blank=True, validators=[topic_name]
    )
    limit = FiniteFloatField(required=False, allow_null=True, default=None)
    delivery = serializers.ChoiceField(
        choices=Delivery.choices,
        default=Delivery.EXACTLY_ONCE,
        help_text="exactly-once: one transaction per micro-batch, read the outputs "
        "read_committed. at-least-once: no transactions, for consumers that cannot skip "
        "transaction markers (kafka-python); a crash may answer records twice.",
    )


class InferenceListApi(APIView):
    @extend_schema(responses=InferenceOutput(many=True), operation_id="inferences_list")
    def get(self, request: Request) -> Response:
        return Response(
            InferenceOutput(selectors.inference_list(user=request.user), many=True).data
        )

    @extend_schema(
        request=InferenceCreateInput,
        responses={201: InferenceOutput},
        operation_id="inferences_create",
    )
    def post(self, request: Request) -> Response:
        data = validated(InferenceCreateInput, request.data)
        result = result_get(user=request.user, result_id=data.pop("result_id"))
        inference = services.inference_create(
            owner=cast(User, request.user),
            result=result,
            settings=services.InferenceSettings(**data),
        )
        return Response(InferenceOutput(inference).data, status=status.HTTP_201_CREATED)


class InferenceDetailApi(APIView):
    @extend_schema(responses=InferenceOutput, operation_id="inferences_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        inference = selectors.inference_get(user=request.user, inference_id=pk)
        return Response(InferenceOutput(inference).data)

    @extend_schema(responses={204: None}, operation_id="inferences_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        services.inference_delete(
            inference=selectors.inference_get(user=request.user, inference_id=pk)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class InferenceStopApi(APIView):
    @extend_schema(request=None, responses=InferenceOutput, operation_id="inferences_stop")
    def post(self, request: Request, pk: int) -> Response:
        inference = selectors.inference_get(user=request.user, inference_id=pk)
        return Response(InferenceOutput(services.inference_stop(inference=inference)).data)


class ScaleInput(serializers.Serializer[Any]):
    replicas = serializers.IntegerField(min_value=1, max_value=100)


class InferenceScaleApi(APIView):
    @extend_schema(request=ScaleInput, responses=InferenceOutput, operation_id="inferences_scale")
    def post(self, request: Request, pk: int) -> Response:
        inference = selectors.inference_get(user=request.user, inference_id=pk)
        replicas = validated(ScaleInput, request.data)["replicas"]
        return Response(
            InferenceOutput(services.inference_scale(inference=inference, replicas=replicas)).data
        )


class SwapInput(serializers.Serializer[Any]):
    result_id = serializers.IntegerField(min_value=1, max_value=ID_MAX)


class InferenceSwapApi(APIView):
    @extend_schema(request=SwapInput, responses=InferenceOutput, operation_id="inferences_swap")
    def post(self, request: Request, pk: int) -> Response:
        inference = selectors.inference_get(user=request.user, inference_id=pk)
        result = result_get(
            user=request.user, result_id=validated(SwapInput, request.data)["result_id"]
        )
        return Response(
            InferenceOutput(services.inference_swap(inference=inference, result=result)).data
        )


class InferenceLogsApi(APIView):
    """What the runner knows of the replicas: state, detail, recent log text."""

    @extend_schema(responses=LogsOutput, operation_id="inferences_logs")
    def get(self, request: Request, pk: int) -> Response:
        inference = selectors.inference_get(user=request.user, inference_id=pk)
        runner = get_runner()
        job = runner.status(JobKind.INFERENCE, inference.pk)
        logs = runner.logs(JobKind.INFERENCE, inference.pk)
        return Response({"state": job.state, "detail": job.detail, "logs": logs})


class InferenceDefaultsOutput(serializers.Serializer[Any]):
    input_format = serializers.CharField()
    input_config = serializers.DictField()


class ResultInferenceDefaultsApi(APIView):
    @extend_schema(responses=InferenceDefaultsOutput, operation_id="results_inference_defaults")
    def get(self, request: Request, pk: int) -> Response:
        result = result_get(user=request.user, result_id=pk)
        defaults: dict[str, Any] = selectors.inference_defaults(result=result)
        return Response(defaults)
