"""REST endpoints of models and configurations: parse, call one service or selector, serialize."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.apps.mlmodels import selectors, services
from backend.apps.mlmodels.models import Configuration, Framework, MLModel
from backend.kafkaml_backend.errors import ApplicationError
from backend.kafkaml_backend.validation import CODE_MAX, DESCRIPTION_MAX, ID_MAX, validated


class MLModelOutput(serializers.ModelSerializer[MLModel]):
    upper_id = serializers.IntegerField(allow_null=True)
    lower_id = serializers.SerializerMethodField()

    class Meta:
        model = MLModel
        fields = [
            "id",
            "name",
            "description",
            "framework",
            "imports",
            "code",
            "distributed",
            "upper_id",
            "lower_id",
            "summary",
            "created_at",
            "updated_at",
        ]

    def get_lower_id(self, model: MLModel) -> int | None:
        lower = getattr(model, "lower", None)
        return lower.pk if lower is not None else None


class MLModelCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=DESCRIPTION_MAX
    )
    framework = serializers.ChoiceField(choices=Framework.choices)
    imports = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=CODE_MAX
    )
    code = serializers.CharField(max_length=CODE_MAX)
    distributed = serializers.BooleanField(required=False, default=False)
    upper_id = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=ID_MAX
    )


class MLModelUpdateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=DESCRIPTION_MAX
    )
    framework = serializers.ChoiceField(choices=Framework.choices, required=False)
    imports = serializers.CharField(required=False, allow_blank=True, max_length=CODE_MAX)
    code = serializers.CharField(required=False, max_length=CODE_MAX)
    distributed = serializers.BooleanField(required=False)
    upper_id = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=ID_MAX
    )


def _upper(request: Request, upper_id: int | None) -> MLModel | None:
    if upper_id is None:
        return None
    try:
        return selectors.model_get(user=request.user, model_id=upper_id)
    except ApplicationError as error:
        raise ApplicationError(
            "Upper model not found.", {"fields": {"upper_id": ["not found"]}}
        ) from error


class MLModelListApi(APIView):
    @extend_schema(responses=MLModelOutput(many=True), operation_id="models_list")
    def get(self, request: Request) -> Response:
        models = selectors.model_list(user=request.user)
        return Response(MLModelOutput(models, many=True).data)

    @extend_schema(
        request=MLModelCreateInput, responses={201: MLModelOutput}, operation_id="models_create"
    )
    def post(self, request: Request) -> Response:
        data = validated(MLModelCreateInput, request.data)
        upper = _upper(request, data.pop("upper_id"))
        model = services.model_create(owner=cast(User, request.user), upper=upper, **data)
        return Response(MLModelOutput(model).data, status=status.HTTP_201_CREATED)


class MLModelDetailApi(APIView):
    @extend_schema(responses=MLModelOutput, operation_id="models_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(MLModelOutput(selectors.model_get(user=request.user, model_id=pk)).data)

    @extend_schema(
        request=MLModelUpdateInput, responses=MLModelOutput, operation_id="models_update"
    )
    def patch(self, request: Request, pk: int) -> Response:
        model = selectors.model_get(user=request.user, model_id=pk)
        changes = validated(MLModelUpdateInput, request.data)
        if "upper_id" in changes:
            changes["upper"] = _upper(request, changes.pop("upper_id"))
        model = services.model_update(model=model, **changes)
        return Response(MLModelOutput(model).data)

    @extend_schema(responses={204: None}, operation_id="models_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        services.model_delete(model=selectors.model_get(user=request.user, model_id=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ConfigurationOutput(serializers.ModelSerializer[Configuration]):
    ml_model_ids = serializers.SerializerMethodField()

    class Meta:
        model = Configuration
        fields = ["id", "name", "description", "ml_model_ids", "created_at"]

    def get_ml_model_ids(self, configuration: Configuration) -> list[int]:
        return sorted(model.pk for model in configuration.ml_models.all())


class ConfigurationCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=DESCRIPTION_MAX
    )
    ml_model_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX),
        allow_empty=False,
        max_length=100,
    )


class ConfigurationUpdateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(
        required=False, allow_blank=True, max_length=DESCRIPTION_MAX
    )
    ml_model_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=ID_MAX),
        allow_empty=False,
        max_length=100,
        required=False,
    )


def _models(request: Request, ids: list[int]) -> list[MLModel]:
    visible = {m.pk: m for m in selectors.model_list(user=request.user).filter(pk__in=ids)}
    missing = sorted(set(ids) - set(visible))
    if missing:
        raise ApplicationError(
            "Models not found.", {"fields": {"ml_model_ids": [f"not found: {missing}"]}}
        )
    return [visible[i] for i in dict.fromkeys(ids)]


class ConfigurationListApi(APIView):
    @extend_schema(responses=ConfigurationOutput(many=True), operation_id="configurations_list")
    def get(self, request: Request) -> Response:
        configurations = selectors.configuration_list(user=request.user)
        return Response(ConfigurationOutput(configurations, many=True).data)

    @extend_schema(
        request=ConfigurationCreateInput,
        responses={201: ConfigurationOutput},
        operation_id="configurations_create",
    )
    def post(self, request: Request) -> Response:
        data = validated(ConfigurationCreateInput, request.data)
        configuration = services.configuration_create(
            owner=cast(User, request.user),
            name=data["name"],
            description=data["description"],
            ml_models=_models(request, data["ml_model_ids"]),
        )
        return Response(ConfigurationOutput(configuration).data, status=status.HTTP_201_CREATED)


class ConfigurationDetailApi(APIView):
    @extend_schema(responses=ConfigurationOutput, operation_id="configurations_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        configuration = selectors.configuration_get(user=request.user, configuration_id=pk)
        return Response(ConfigurationOutput(configuration).data)

    @extend_schema(
        request=ConfigurationUpdateInput,
        responses=ConfigurationOutput,
        operation_id="configurations_update",
    )
    def patch(self, request: Request, pk: int) -> Response:
        configuration = selectors.configuration_get(user=request.user, configuration_id=pk)
        data = validated(ConfigurationUpdateInput, request.data)
        ids = data.pop("ml_model_ids", None)
        configuration = services.configuration_update(
            configuration=configuration, ml_models=_models(request, ids) if ids else None, **data
        )
        return Response(ConfigurationOutput(configuration).data)

    @extend_schema(responses={204: None}, operation_id="configurations_destroy")
    def delete(self, request: Request, pk: int) -> Response:
        configuration = selectors.configuration_get(user=request.user, configuration_id=pk)
        services.configuration_delete(configuration=configuration)
        return Response(status=status.HTTP_204_NO_CONTENT)
