"""REST endpoints of datasources: list what the control logger recorded, replay one."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.apps.datasources import selectors, services
from backend.apps.datasources.models import Datasource
from backend.apps.training.selectors import deployment_get
from backend.kafkaml_backend.validation import ID_MAX, validated


class DatasourceOutput(serializers.ModelSerializer[Datasource]):
    deployment_id = serializers.IntegerField()

    class Meta:
        model = Datasource
        fields = [
            "id",
            "deployment_id",
            "control_topic",
            "partition",
            "offset",
            "topic",
            "input_format",
            "input_config",
            "description",
            "validation_rate",
            "test_rate",
            "total_msg",
            "incremental",
            "message",
            "sent_at",
            "recorded_at",
        ]


class DatasourceFilter(serializers.Serializer[Any]):
    deployment_id = serializers.IntegerField(required=False, min_value=1, max_value=ID_MAX)


class DatasourceListApi(APIView):
    @extend_schema(
        parameters=[DatasourceFilter],
        responses=DatasourceOutput(many=True),
        operation_id="datasources_list",
    )
    def get(self, request: Request) -> Response:
        query = validated(DatasourceFilter, request.query_params)
        datasources = selectors.datasource_list(
            user=request.user, deployment_id=query.get("deployment_id")
        )
        return Response(DatasourceOutput(datasources, many=True).data)


class DatasourceDetailApi(APIView):
    @extend_schema(responses=DatasourceOutput, operation_id="datasources_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        datasource = selectors.datasource_get(user=request.user, datasource_id=pk)
        return Response(DatasourceOutput(datasource).data)


class ReplayInput(serializers.Serializer[Any]):
    deployment_id = serializers.IntegerField(min_value=1, max_value=ID_MAX)


class DatasourceReplayApi(APIView):
    @extend_schema(request=ReplayInput, responses={202: None}, operation_id="datasources_replay")
    def post(self, request: Request, pk: int) -> Response:
        datasource = selectors.datasource_get(user=request.user, datasource_id=pk)
        data = validated(ReplayInput, request.data)
        deployment = deployment_get(user=request.user, deployment_id=data["deployment_id"])
        services.datasource_replay(datasource=datasource, deployment=deployment)
        return Response(status=status.HTTP_202_ACCEPTED)
