"""REST endpoints of deployments, training results and model import."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.core.files import File
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.apps.mlmodels.models import Framework
from backend.apps.mlmodels.selectors import configuration_get
from backend.apps.training import selectors, services
from backend.apps.training.models import (
    ArtifactFormat,
    Deployment,
    TrainingMode,
    TrainingResult,
    TrainingTarget,
)
from backend.kafkaml_backend.errors import NotFoundError
from backend.kafkaml_backend.parsers import BoundedJSONParser
from backend.kafkaml_backend.runners import JobKind, get_runner
from backend.kafkaml_backend.validation import (
    CODE_MAX,
    DESCRIPTION_MAX,
    ID_MAX,
    INT32_MAX,
    FiniteFloatField,
    JsonObjectField,
    TrainingArgumentsField,
    validated,
)


class IncrementalOptions(serializers.Serializer[Any]):
    stream_timeout_ms = serializers.IntegerField(
        min_value=1,
        max_value=INT32_MAX,
        default=60_000,
        help_text="Stop after this long without data.",
    )
    indefinite = serializers.BooleanField(
        default=False, help_text="Never stop; snapshot on improvement."
    )
    monitoring_metric = serializers.CharField(max_length=100, allow_blank=True, default="")
    change = serializers.ChoiceField(choices=["up", "down"], default="up")
    window = serializers.IntegerField(
        min_value=1, max_value=INT32_MAX, default=1000, help_text="Samples per training window."
    )
    improvement = FiniteFloatField(min_value=0, default=0.05)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["indefinite"] and not attrs["monitoring_metric"]:
            raise serializers.ValidationError(
                {"monitoring_metric": ["required for indefinite training"]}
            )
        return attrs


class DistributedOptions(serializers.Serializer[Any]):
    # Names are taken as given: trimming would accept a name longer than the documented maximum.
    optimizer = serializers.CharField(max_length=50, default="adam", trim_whitespace=False)
    learning_rate = FiniteFloatField(min_value=0, default=0.001)
    loss = serializers.CharField(
        max_length=100, default="sparse_categorical_crossentropy", trim_whitespace=False
    )
    metrics = serializers.ListField(
        child=serializers.CharField(max_length=100, trim_whitespace=False),
        default=["accuracy"],
        max_length=20,
    )


class SemiSupervisedOptions(serializers.Serializer[Any]):
    rounds = serializers.IntegerField(min_value=1, max_value=1000, default=5)
    confidence = FiniteFloatField(min_value=0, max_value=1, default=0.9)


class FederatedOptions(serializers.Serializer[Any]):
    rounds = serializers.IntegerField(min_value=1, max_value=10_000, default=15)
    local_epochs = serializers.IntegerField(min_value=1, max_value=10_000, default=1)
    min_clients = serializers.IntegerField(min_value=1, max_value=10_000, default=1)
    min_data = serializers.IntegerField(min_value=1, max_value=INT32_MAX, default=1)
    data_restrictions = JsonObjectField(default=dict)
    round_timeout_s = FiniteFloatField(min_value=1, max_value=86_400, default=300)
    strategy = serializers.ChoiceField(choices=["fedavg", "fedprox", "fedadam"], default="fedavg")
    mu = FiniteFloatField(
        min_value=0, required=False, help_text="FedProx's proximal weight (default 0.01)."
    )
    server_learning_rate = FiniteFloatField(
        min_value=1e-9, max_value=100, default=0.01, help_text="FedAdam's server step size."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "mu" not in attrs:
            attrs["mu"] = 0.01 if attrs.get("strategy") == "fedprox" else 0.0
        return attrs


MODE_OPTIONS = {
    "incremental": (TrainingMode.INCREMENTAL, IncrementalOptions),
    "distributed": (TrainingMode.DISTRIBUTED, DistributedOptions),
    "semi_supervised": (TrainingMode.SEMI_SUPERVISED, SemiSupervisedOptions),
    "federated": (TrainingMode.FEDERATED, FederatedOptions),
}


class DeploymentCreateInput(serializers.Serializer[Any]):
    configuration_id = serializers.IntegerField(min_value=1, max_value=ID_MAX)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=DESCRIPTION_MAX
    )
    mode = serializers.ChoiceField(choices=TrainingMode.choices, default=TrainingMode.CLASSIC)
    batch_size = serializers.IntegerField(min_value=1, max_value=1_000_000)
    fit_kwargs = TrainingArgumentsField(
        default=dict,
        help_text='Keras fit / Ignite run arguments, e.g. {"epochs": 5, "shuffle": true}; the '
        "numeric ones are bounded (epochs 1..100000, steps_per_epoch 1..10^7, ...).",
    )
    eval_kwargs = TrainingArgumentsField(default=dict, help_text="Evaluation arguments.")
    gpus = serializers.IntegerField(min_value=0, max_value=16, default=0)
    reader = serializers.ChoiceField(choices=["native", "tfio"], default="native")
    confusion_matrix = serializers.BooleanField(default=False)
    target = serializers.ChoiceField(
        choices=TrainingTarget.choices,
        default=TrainingTarget.LABEL,
        help_text="What the models learn to output: the record's label (key), or the input "
        "itself (autoencoders; the stream may carry no labels). 'input' needs mode classic or "
        "incremental.",
    )
    incremental = IncrementalOptions(required=False, allow_null=True, default=None)
    distributed = DistributedOptions(required=False, allow_null=True, default=None)
    semi_supervised = SemiSupervisedOptions(required=False, allow_null=True, default=None)
    federated = FederatedOptions(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # The options object of the chosen mode always exists, with its defaults filled in.
        for name, (mode, options_class) in MODE_OPTIONS.items():
            if attrs["mode"] == mode and attrs.get(name) is None:
                options = options_class(data={})
                options.is_valid(raise_exception=True)
                attrs[name] = dict(options.validated_data)
            elif attrs.get(name) is not None:
                attrs[name] = dict(attrs[name])
        return attrs


class DeploymentOutput(serializers.ModelSerializer[Deployment]):
    configuration_id = serializers.IntegerField()
    result_ids = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = [
            "id",
            "configuration_id",
            "description",
            "mode",
            "batch_size",
            "fit_kwargs",
            "eval_kwargs",
            "gpus",
            "reader",
            "confusion_matrix",
            "target",
            "incremental",
            "distributed",
            "semi_supervised",
            "federated",
            "result_ids",
            "created_at",
        ]

    def get_result_ids(self, deployment: Deployment) -> list[int]:
        return sorted(result.pk for result in deployment.results.all())


class ResultOutput(serializers.ModelSerializer[TrainingResult]):
    deployment_id = serializers.IntegerField(allow_null=True)
    model_id = serializers.IntegerField()
    snapshot_of_id = serializers.IntegerField(allow_null=True)
    model_name = serializers.CharField(source="model.name")
    framework = serializers.CharField(source="model.framework")
    has_artifact = serializers.SerializerMethodField()

    class Meta:
        model = TrainingResult
        fields = [
            "id",
            "deployment_id",
            "model_id",
            "snapshot_of_id",
            "model_name",
            "framework",
            "status",
            "epochs",
            "train_metrics",
            "validation_metrics",
            "test_metrics",
            "confusion_matrix",
            "training_time_s",
            "error",
            "artifact_format",
            "has_artifact",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_has_artifact(self, result: TrainingResult) -> bool:
        return bool(result.artifact)


class DeploymentListApi(APIView):
    # JSON only: a form body cannot carry the mode's nested options, and DRF would silently
    # take a form field `distributed=<anything>` as absent (schemathesis found it accepted).
    parser_classes = [BoundedJSONParser]

    @extend_schema(responses=DeploymentOutput(many=True), operation_id="deployments_list")
    def get(self, request: Request) -> Response:
        deployments = selectors.deployment_list(user=request.user)
        return Response(DeploymentOutput(deployments, many=True).data)

    @extend_schema(
        request=DeploymentCreateInput,
        responses={201: DeploymentOutput},
        operation_id="deployments_create",
    )
    def post(self, request: Request) -> Response:
        data = validated(DeploymentCreateInput, request.data)
        configuration = configuration_get(
            user=request.user, configuration_id=data.pop("configuration_id")
        )
        description = data.pop("description")
        deployment = services.deployment_create(
            owner=cast(User, request.user),
            configuration=configuration,
            description=description,
            training=services.TrainingSettings(**data),
        )
        return Response(DeploymentOutput(deployment).data, status=status.HTTP_201_CREATED)


class DeploymentDetailApi(APIView):
    @extend_schema(responses=DeploymentOutput, operation_id="deployments_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
        return Response(DeploymentOutput(deployment).data)

    @extend_schema(responses={204: None}, operation_id="deployments_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
        services.deployment_delete(deployment=deployment)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeploymentResultsApi(APIView):
    @extend_schema(responses=ResultOutput(many=True), operation_id="deployments_results")
    def get(self, request: Request, pk: int) -> Response:
        deployment = selectors.deployment_get(user=request.user, deployment_id=pk)
        results = selectors.result_list(user=request.user, deployment_id=deployment.pk)
        return Response(ResultOutput(results, many=True).data)


class ResultListApi(APIView):
    @extend_schema(responses=ResultOutput(many=True), operation_id="results_list")
    def get(self, request: Request) -> Response:
        return Response(ResultOutput(selectors.result_list(user=request.user), many=True).data)


class ResultDetailApi(APIView):
    @extend_schema(responses=ResultOutput, operation_id="results_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(ResultOutput(selectors.result_get(user=request.user, result_id=pk)).data)

    @extend_schema(responses={204: None}, operation_id="results_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        services.result_delete(result=selectors.result_get(user=request.user, result_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ResultStopApi(APIView):
    @extend_schema(request=None, responses=ResultOutput, operation_id="results_stop")
    def post(self, request: Request, pk: int) -> Response:
        result = selectors.result_get(user=request.user, result_id=pk)
        return Response(ResultOutput(services.result_stop(result=result)).data)


class ArtifactQuery(serializers.Serializer[Any]):
    # Not `format`: DRF reads that query parameter to choose a renderer.
    artifact_format = serializers.ChoiceField(
        choices=["native", "onnx"],
        default="native",
        help_text="native: as trained (.keras, PyTorch state_dict); onnx: converted once, kept.",
    )


class ResultArtifactApi(APIView):
    @extend_schema(
        parameters=[ArtifactQuery],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            404: OpenApiResponse(description="No artifact yet."),
        },
        operation_id="results_artifact",
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        result = selectors.result_get(user=request.user, result_id=pk)
        if validated(ArtifactQuery, request.query_params)["artifact_format"] == "onnx":
            return artifact_response(result, services.result_onnx_artifact(result=result))
        return artifact_response(result)


def artifact_response(result: TrainingResult, artifact: File[bytes] | None = None) -> FileResponse:
    """The result's artifact (or `artifact`, a conversion of it) as a download; NotFoundError
    while it has none."""
    if not result.artifact:
        raise NotFoundError("The result has no trained model yet.", {"status": result.status})
    artifact = artifact or result.artifact
    name = f"{result.model.name}-{result.pk}.{cast(str, artifact.name).rsplit('.', 1)[-1]}"
    return FileResponse(
        artifact.open("rb"),
        as_attachment=True,
        filename=name,
        content_type="application/octet-stream",
    )


class LogsOutput(serializers.Serializer[Any]):
    state = serializers.CharField()
    detail = serializers.CharField()
    logs = serializers.CharField()


class ResultLogsApi(APIView):
    @extend_schema(responses=LogsOutput, operation_id="results_logs")
    def get(self, request: Request, pk: int) -> Response:
        result = selectors.result_get(user=request.user, result_id=pk)
        runner = get_runner()
        job = runner.status(JobKind.RESULT, result.pk)
        logs = runner.logs(JobKind.RESULT, result.pk)
        return Response({"state": job.state, "detail": job.detail, "logs": logs})


class ModelImportInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=DESCRIPTION_MAX
    )
    framework = serializers.ChoiceField(choices=Framework.choices)
    artifact_format = serializers.ChoiceField(choices=ArtifactFormat.choices)
    artifact = serializers.FileField(max_length=300)
    imports = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=CODE_MAX
    )
    code = serializers.CharField(required=False, allow_blank=True, default="", max_length=CODE_MAX)


class ModelImportApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request={"multipart/form-data": ModelImportInput},
        responses={201: ResultOutput},
        operation_id="models_import",
    )
    def post(self, request: Request) -> Response:
        data = validated(ModelImportInput, request.data)
        result = services.result_import(owner=cast(User, request.user), **data)
        return Response(ResultOutput(result).data, status=status.HTTP_201_CREATED)
