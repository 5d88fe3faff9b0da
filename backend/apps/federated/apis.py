"""REST endpoints of federated learning.

Users register and revoke their workers (`/api/federated/workers`); a worker, with the
credential it was given once, finds the federated deployments its datasets fit and joins them
(`/api/federated/worker/...`); a coordinator job, with its result's job token, gets the signing
keys of the workers that joined its deployment, and of no other
(`/api/jobs/results/{pk}/federated-workers`).
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from backend.apps.federated import selectors, services
from backend.apps.federated.auth import FederatedWorkerAuthentication, WorkerPrincipal
from backend.apps.federated.models import FederatedMembership, FederatedWorker
from backend.apps.jobs.apis import ResultJobApi
from backend.apps.training.selectors import result_for_job
from backend.kafkaml_backend.parsers import BoundedJSONParser
from backend.kafkaml_backend.validation import ID_MAX, INT32_MAX, JsonObjectField, validated


class _DatasetFields(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, trim_whitespace=False)
    input_shape = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=INT32_MAX),
        min_length=1,
        max_length=8,
        help_text="One sample's shape, without the batch dimension.",
    )
    dataset_restrictions = JsonObjectField(
        default=dict, help_text="What the data is, as its sink announces it."
    )
    samples = serializers.IntegerField(
        min_value=1, max_value=ID_MAX, help_text="Training samples the worker holds."
    )


class DatasetDescription(_DatasetFields):
    """One dataset of a worker, with the JSON types checked strictly, as at the top level."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        return validated(_DatasetFields, data)


class WorkerCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100, trim_whitespace=False)
    datasets = serializers.ListField(child=DatasetDescription(), min_length=1, max_length=100)


class WorkerOutput(serializers.ModelSerializer[FederatedWorker]):
    datasets = serializers.ListField(child=DatasetDescription())

    class Meta:
        model = FederatedWorker
        fields = ["id", "name", "worker_id", "datasets", "created_at", "revoked_at"]


class WorkerCreatedOutput(WorkerOutput):
    credential = serializers.CharField(
        help_text="Shown this once: the backend keeps only its hash. The worker's "
        "KAFKAML_WORKER_CREDENTIAL."
    )

    class Meta(WorkerOutput.Meta):
        fields = [*WorkerOutput.Meta.fields, "credential"]


class WorkerListApi(APIView):
    parser_classes = [BoundedJSONParser]

    @extend_schema(responses=WorkerOutput(many=True), operation_id="federated_workers_list")
    def get(self, request: Request) -> Response:
        workers = selectors.worker_list(user=request.user)
        return Response(WorkerOutput(workers, many=True).data)

    @extend_schema(
        request=WorkerCreateInput,
        responses={201: WorkerCreatedOutput},
        operation_id="federated_workers_create",
    )
    def post(self, request: Request) -> Response:
        data = validated(WorkerCreateInput, request.data)
        worker, credential = services.worker_register(owner=cast(User, request.user), **data)
        body = {**WorkerOutput(worker).data, "credential": credential}
        return Response(body, status=status.HTTP_201_CREATED)


class WorkerDetailApi(APIView):
    @extend_schema(responses=WorkerOutput, operation_id="federated_workers_retrieve")
    def get(self, request: Request, pk: int) -> Response:
        return Response(WorkerOutput(selectors.worker_get(user=request.user, worker_pk=pk)).data)

    @extend_schema(responses={204: None}, operation_id="federated_workers_revoke")
    def delete(self, request: Request, pk: int) -> Response:
        services.worker_revoke(worker=selectors.worker_get(user=request.user, worker_pk=pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkerApi(APIView):
    """The endpoints a worker calls with its own credential."""

    authentication_classes = [FederatedWorkerAuthentication]
    permission_classes = [IsAuthenticated]

    def worker(self, request: Request) -> FederatedWorker:
        principal = request.user
        assert isinstance(principal, WorkerPrincipal)  # the only authentication here
        return principal.worker


class WorkerSelfApi(WorkerApi):
    @extend_schema(responses=WorkerOutput, operation_id="federated_worker_me")
    def get(self, request: Request) -> Response:
        return Response(WorkerOutput(self.worker(request)).data)


class MatchOutput(serializers.Serializer[Any]):
    deployment_id = serializers.IntegerField()
    result_id = serializers.IntegerField()
    framework = serializers.CharField()
    dataset = serializers.CharField(help_text="The worker's first dataset that fits.")
    joined = serializers.BooleanField()
    federated = serializers.DictField(help_text="The deployment's federated options.")


def _match(match: selectors.Match) -> dict[str, Any]:
    return {
        "deployment_id": match.deployment.pk,
        "result_id": match.result.pk,
        "framework": match.result.model.framework,
        "dataset": match.dataset,
        "joined": match.joined,
        "federated": match.deployment.federated or {},
    }


class WorkerDeploymentsApi(WorkerApi):
    """The owner's federated deployments still training that one of the worker's datasets fits
    (model input shape, `data_restrictions`, `min_data`)."""

    @extend_schema(responses=MatchOutput(many=True), operation_id="federated_worker_deployments")
    def get(self, request: Request) -> Response:
        matches = selectors.deployment_matches(worker=self.worker(request))
        return Response(MatchOutput([_match(m) for m in matches], many=True).data)


class MembershipOutput(serializers.ModelSerializer[FederatedMembership]):
    deployment_id = serializers.IntegerField()

    class Meta:
        model = FederatedMembership
        fields = ["deployment_id", "dataset", "joined_at"]


class WorkerJoinApi(WorkerApi):
    @extend_schema(request=None, responses=MembershipOutput, operation_id="federated_worker_join")
    def post(self, request: Request, pk: int) -> Response:
        membership = services.worker_join(worker=self.worker(request), deployment_id=pk)
        return Response(MembershipOutput(membership).data)


class SigningKeyOutput(serializers.Serializer[Any]):
    worker_id = serializers.CharField()
    name = serializers.CharField()
    signing_key = serializers.CharField(help_text="Hex HMAC-SHA256 key of its updates.")


class ResultFederatedWorkersApi(ResultJobApi):
    """The coordinator's view: the workers that joined its result's deployment (revoked ones
    left out), with the keys that verify their updates."""

    @extend_schema(
        responses=SigningKeyOutput(many=True), operation_id="jobs_results_federated_workers"
    )
    def get(self, request: Request, pk: int) -> Response:
        result = result_for_job(result_id=pk)
        members = (
            selectors.deployment_members(deployment_id=result.deployment_id)
            if result.deployment_id is not None
            else FederatedWorker.objects.none()
        )
        return Response(SigningKeyOutput(members, many=True).data)
