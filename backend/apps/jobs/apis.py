"""The job API: what training jobs, inference replicas and the control logger call.

Each endpoint accepts only a job token (`Authorization: Bearer ...`) of its kind, and a result
or inference token only for the object in its URL. User credentials are not accepted here.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.apps.datasources.services import datasource_record
from backend.apps.inferences.models import Inference
from backend.apps.inferences.selectors import inference_ended_status, inference_for_job
from backend.apps.training import services
from backend.apps.training.apis import ResultOutput, artifact_response
from backend.apps.training.models import ArtifactFormat, TrainingResult
from backend.apps.training.selectors import result_ended_status, result_for_job
from backend.kafkaml_backend.auth import (
    InferenceJobAuthentication,
    IsOwnJob,
    JobPrincipal,
    ResultJobAuthentication,
    ServiceAuthentication,
)
from backend.kafkaml_backend.errors import ConflictError
from backend.kafkaml_backend.parsers import BoundedJSONParser
from backend.kafkaml_backend.validation import (
    ID_MAX,
    INT32_MAX,
    FiniteFloatField,
    storable_json,
    validated,
)


class JobNotEnded(permissions.BasePermission):
    """The job token's result or inference has not ended. A token stops working once its
    result is finished, failed or stopped, or its inference stopped or failed: every request
    is refused with 409 and the status in `extra.status` (the answer a job already got for a
    report outside the status machine)."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        principal = request.user
        if not isinstance(principal, JobPrincipal):
            return False
        if principal.kind == "result":
            status = result_ended_status(result_id=principal.id)
        elif principal.kind == "inference":
            status = inference_ended_status(inference_id=principal.id)
        else:
            return True
        if status is not None:
            raise ConflictError(
                f"This job token's {principal.kind} has ended ({status}).", {"status": status}
            )
        return True


class ResultJobApi(APIView):
    authentication_classes = [ResultJobAuthentication]
    permission_classes = [IsOwnJob, JobNotEnded]


class InferenceJobApi(APIView):
    authentication_classes = [InferenceJobAuthentication]
    permission_classes = [IsOwnJob, JobNotEnded]


def result_spec(result: TrainingResult) -> dict[str, Any]:
    """What a training job needs to train `result` (the job API's spec document)."""
    deployment = result.deployment
    chain = (
        list(
            deployment.results.filter(model__in=_chain_ids(result))
            .order_by("id")
            .values_list("id", flat=True)
        )
        if deployment
        else [result.pk]
    )
    training = (
        {}
        if deployment is None
        else {
            "mode": deployment.mode,
            "batch_size": deployment.batch_size,
            "fit_kwargs": deployment.fit_kwargs,
            "eval_kwargs": deployment.eval_kwargs,
            "gpus": deployment.gpus,
            "reader": deployment.reader,
            "confusion_matrix": deployment.confusion_matrix,
            "target": deployment.target,
            "incremental": deployment.incremental,
            "distributed": deployment.distributed,
            "semi_supervised": deployment.semi_supervised,
            "federated": deployment.federated,
        }
    )
    return {
        "result_id": result.pk,
        "deployment_id": result.deployment_id,
        "deployment_created_at": deployment.created_at.isoformat() if deployment else None,
        "framework": result.model.framework,
        "model": {
            "name": result.model.name,
            "imports": result.model.imports,
            "code": result.model.code,
            "summary": result.model.summary,
        },
        "training": training,
        "chain_result_ids": chain,
        "control_topic": settings.KAFKAML.control_topic,
    }


def _chain_ids(result: TrainingResult) -> list[int]:
    # The chain's models, top to bottom, starting from the top above this result's model.
    model = result.model
    while model.upper is not None:
        model = model.upper
    ids = [model.pk]
    while (lower := getattr(model, "lower", None)) is not None:
        ids.append(lower.pk)
        model = lower
    return ids


class ResultSpecApi(ResultJobApi):
    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="jobs_results_spec")
    def get(self, request: Request, pk: int) -> Response:
        return Response(result_spec(result_for_job(result_id=pk)))


class ResultRunningApi(ResultJobApi):
    @extend_schema(request=None, responses=ResultOutput, operation_id="jobs_results_running")
    def post(self, request: Request, pk: int) -> Response:
        return Response(ResultOutput(services.result_mark_running(result_id=pk)).data)


class EpochInput(serializers.Serializer[Any]):
    epoch = serializers.IntegerField(min_value=0, max_value=1_000_000)
    train = serializers.DictField(child=FiniteFloatField(), default=dict)
    validation = serializers.DictField(child=FiniteFloatField(), default=dict)


class ResultEpochApi(ResultJobApi):
    @extend_schema(request=EpochInput, responses=ResultOutput, operation_id="jobs_results_epochs")
    def post(self, request: Request, pk: int) -> Response:
        data = validated(EpochInput, request.data)
        return Response(ResultOutput(services.result_record_epoch(result_id=pk, **data)).data)


class FinalMetrics(serializers.Serializer[Any]):
    train = serializers.DictField(
        child=serializers.ListField(child=FiniteFloatField()), default=dict
    )
    validation = serializers.DictField(
        child=serializers.ListField(child=FiniteFloatField()), default=dict
    )
    test = serializers.DictField(child=FiniteFloatField(), default=dict)
    confusion_matrix = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(min_value=0, max_value=ID_MAX)),
        allow_null=True,
        default=None,
    )
    training_time_s = FiniteFloatField(min_value=0, allow_null=True, default=None)


class MetricsJsonField(serializers.CharField):
    """A multipart text field holding a JSON object (strict: no NaN or Infinity)."""

    def to_internal_value(self, data: Any) -> Any:
        text = super().to_internal_value(data)
        try:
            value = json.loads(text, parse_constant=_refuse_constant)
        except ValueError as error:
            raise serializers.ValidationError(f"Not valid JSON: {error}") from error
        metrics = FinalMetrics(data=storable_json(value) if isinstance(value, dict) else None)
        metrics.is_valid(raise_exception=True)
        return dict(metrics.validated_data)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


class ArtifactInput(serializers.Serializer[Any]):
    artifact = serializers.FileField(max_length=300)
    metrics = MetricsJsonField(
        help_text="JSON: train, validation, test, confusion_matrix, training_time_s."
    )
    artifact_format = serializers.ChoiceField(choices=ArtifactFormat.choices, required=False)


class ResultArtifactUploadApi(ResultJobApi):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ArtifactInput},
        responses=ResultOutput,
        operation_id="jobs_results_artifact",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = validated(ArtifactInput, request.data)
        result = services.result_finish(
            result_id=pk,
            artifact=data["artifact"],
            metrics=data["metrics"],
            artifact_format=data.get("artifact_format"),
        )
        return Response(ResultOutput(result).data)


class ResultSnapshotApi(ResultJobApi):
    """An indefinite incremental job uploads a model that improved: a new finished result."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ArtifactInput},
        responses={201: ResultOutput},
        operation_id="jobs_results_snapshots",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = validated(ArtifactInput, request.data)
        snapshot = services.result_snapshot(
            result_id=pk,
            artifact=data["artifact"],
            metrics=data["metrics"],
            artifact_format=data.get("artifact_format"),
        )
        return Response(ResultOutput(snapshot).data, status=status.HTTP_201_CREATED)


class FailureInput(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=100_000)


class ResultFailureApi(ResultJobApi):
    @extend_schema(
        request=FailureInput, responses=ResultOutput, operation_id="jobs_results_failure"
    )
    def post(self, request: Request, pk: int) -> Response:
        reason = validated(FailureInput, request.data)["reason"]
        return Response(ResultOutput(services.result_fail(result_id=pk, reason=reason)).data)


def inference_spec(inference: Inference) -> dict[str, Any]:
    """What an inference replica needs to serve `inference` (the job API's spec document)."""
    result = inference.result
    return {
        "inference_id": inference.pk,
        "result_id": result.pk,
        "model_version": inference.model_version,
        "status": inference.status,
        "framework": result.model.framework,
        "artifact_format": result.artifact_format,
        "model": {"imports": result.model.imports, "code": result.model.code},
        "input_format": inference.input_format,
        "input_config": inference.input_config,
        "input_topic": inference.input_topic,
        "output_topic": inference.output_topic,
        "input_bootstrap": inference.input_bootstrap,
        "output_bootstrap": inference.output_bootstrap,
        "upper_bootstrap": inference.upper_bootstrap,
        "upper_topic": inference.upper_topic,
        "limit": inference.limit,
        "delivery": inference.delivery,
    }


class InferenceSpecApi(InferenceJobApi):
    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="jobs_inferences_spec")
    def get(self, request: Request, pk: int) -> Response:
        return Response(inference_spec(inference_for_job(inference_id=pk)))


class InferenceArtifactApi(InferenceJobApi):
    @extend_schema(
        responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
        operation_id="jobs_inferences_artifact",
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        inference = inference_for_job(inference_id=pk)
        response = artifact_response(inference.result)
        response["X-Model-Version"] = inference.model_version
        return response


class DatasourceRecordInput(serializers.Serializer[Any]):
    deployment_id = serializers.IntegerField(min_value=0, max_value=ID_MAX)
    control_topic = serializers.CharField(max_length=255)
    partition = serializers.IntegerField(min_value=0, max_value=INT32_MAX)
    offset = serializers.IntegerField(min_value=0, max_value=ID_MAX)
    sent_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    value = serializers.JSONField(help_text="The control message value as on the wire.")

    def validate_value(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Expected a JSON object.")
        return storable_json(value)


class DatasourceRecordOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    created = serializers.BooleanField()


class DatasourceRecordApi(APIView):
    """The control logger records a control message (idempotent on topic/partition/offset)."""

    authentication_classes = [ServiceAuthentication]
    permission_classes = [IsOwnJob]
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        request=DatasourceRecordInput,
        responses={200: DatasourceRecordOutput, 201: DatasourceRecordOutput},
        operation_id="jobs_datasources_record",
    )
    def post(self, request: Request) -> Response:
        data = validated(DatasourceRecordInput, request.data)
        datasource, created = datasource_record(**data)
        return Response(
            {"id": datasource.pk, "created": created},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )
