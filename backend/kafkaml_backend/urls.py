"""Every URL of the backend. Public: health, login, the OpenAPI schema and its Swagger UI."""

from __future__ import annotations

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backend.apps.accounts import apis as accounts
from backend.apps.datasources import apis as datasources
from backend.apps.federated import apis as federated
from backend.apps.inferences import apis as inferences
from backend.apps.jobs import apis as jobs
from backend.apps.mlmodels import apis as mlmodels
from backend.apps.training import apis as training
from backend.apps.visualization import apis as visualization
from backend.kafkaml_backend import schema, spa  # noqa: F401  (registers the job token scheme)
from backend.kafkaml_backend.metrics import MetricsApi

handler400 = "backend.kafkaml_backend.errors.bad_request"
handler403 = "backend.kafkaml_backend.errors.permission_denied"
handler404 = "backend.kafkaml_backend.errors.not_found"
handler500 = "backend.kafkaml_backend.errors.server_error"

PUBLIC_URL_NAMES = frozenset({"health", "login", "schema", "docs", "spa"})

urlpatterns = [
    path("api/health", accounts.HealthApi.as_view(), name="health"),
    path("api/auth/login", accounts.LoginApi.as_view(), name="login"),
    path("api/auth/logout", accounts.LogoutApi.as_view(), name="logout"),
    path("api/auth/me", accounts.MeApi.as_view(), name="me"),
    path("api/auth/token", accounts.TokenApi.as_view(), name="token"),
    path("api/platform", accounts.PlatformApi.as_view(), name="platform"),
    path("api/models", mlmodels.MLModelListApi.as_view(), name="models"),
    path("api/models/import", training.ModelImportApi.as_view(), name="models-import"),
    path("api/models/<int:pk>", mlmodels.MLModelDetailApi.as_view(), name="model"),
    path("api/configurations", mlmodels.ConfigurationListApi.as_view(), name="configurations"),
    path(
        "api/configurations/<int:pk>",
        mlmodels.ConfigurationDetailApi.as_view(),
        name="configuration",
    ),
    path("api/deployments", training.DeploymentListApi.as_view(), name="deployments"),
    path("api/deployments/<int:pk>", training.DeploymentDetailApi.as_view(), name="deployment"),
    path(
        "api/deployments/<int:pk>/results",
        training.DeploymentResultsApi.as_view(),
        name="deployment-results",
    ),
    path("api/results", training.ResultListApi.as_view(), name="results"),
    path("api/results/<int:pk>", training.ResultDetailApi.as_view(), name="result"),
    path("api/results/<int:pk>/stop", training.ResultStopApi.as_view(), name="result-stop"),
    path(
        "api/results/<int:pk>/artifact",
        training.ResultArtifactApi.as_view(),
        name="result-artifact",
    ),
    path("api/results/<int:pk>/logs", training.ResultLogsApi.as_view(), name="result-logs"),
    path(
        "api/results/<int:pk>/inference-defaults",
        inferences.ResultInferenceDefaultsApi.as_view(),
        name="result-inference-defaults",
    ),
    path("api/datasources", datasources.DatasourceListApi.as_view(), name="datasources"),
    path("api/datasources/<int:pk>", datasources.DatasourceDetailApi.as_view(), name="datasource"),
    path(
        "api/datasources/<int:pk>/replay",
        datasources.DatasourceReplayApi.as_view(),
        name="datasource-replay",
    ),
    path("api/inferences", inferences.InferenceListApi.as_view(), name="inferences"),
    path("api/inferences/<int:pk>", inferences.InferenceDetailApi.as_view(), name="inference"),
    path(
        "api/inferences/<int:pk>/stop", inferences.InferenceStopApi.as_view(), name="inference-stop"
    ),
    path(
        "api/inferences/<int:pk>/scale",
        inferences.InferenceScaleApi.as_view(),
        name="inference-scale",
    ),
    path(
        "api/inferences/<int:pk>/logs", inferences.InferenceLogsApi.as_view(), name="inference-logs"
    ),
    path(
        "api/inferences/<int:pk>/swap", inferences.InferenceSwapApi.as_view(), name="inference-swap"
    ),
    path(
        "api/inferences/<int:pk>/visualization",
        visualization.VisualizationApi.as_view(),
        name="inference-visualization",
    ),
    path(
        "api/inferences/<int:pk>/visualization/stream",
        visualization.VisualizationStreamApi.as_view(),
        name="inference-visualization-stream",
    ),
    path("api/jobs/results/<int:pk>/spec", jobs.ResultSpecApi.as_view(), name="job-result-spec"),
    path(
        "api/jobs/results/<int:pk>/running",
        jobs.ResultRunningApi.as_view(),
        name="job-result-running",
    ),
    path(
        "api/jobs/results/<int:pk>/epochs", jobs.ResultEpochApi.as_view(), name="job-result-epochs"
    ),
    path(
        "api/jobs/results/<int:pk>/artifact",
        jobs.ResultArtifactUploadApi.as_view(),
        name="job-result-artifact",
    ),
    path(
        "api/jobs/results/<int:pk>/snapshots",
        jobs.ResultSnapshotApi.as_view(),
        name="job-result-snapshots",
    ),
    path(
        "api/jobs/results/<int:pk>/failure",
        jobs.ResultFailureApi.as_view(),
        name="job-result-failure",
    ),
    path(
        "api/jobs/inferences/<int:pk>/spec",
        jobs.InferenceSpecApi.as_view(),
        name="job-inference-spec",
    ),
    path(
        "api/jobs/inferences/<int:pk>/artifact",
        jobs.InferenceArtifactApi.as_view(),
        name="job-inference-artifact",
    ),
    path(
        "api/jobs/results/<int:pk>/federated-workers",
        federated.ResultFederatedWorkersApi.as_view(),
        name="job-result-federated-workers",
    ),
    path("api/federated/workers", federated.WorkerListApi.as_view(), name="federated-workers"),
    path(
        "api/federated/workers/<int:pk>",
        federated.WorkerDetailApi.as_view(),
        name="federated-worker",
    ),
    path("api/federated/worker", federated.WorkerSelfApi.as_view(), name="federated-worker-me"),
    path(
        "api/federated/worker/deployments",
        federated.WorkerDeploymentsApi.as_view(),
        name="federated-worker-deployments",
    ),
    path(
        "api/federated/worker/deployments/<int:pk>/join",
        federated.WorkerJoinApi.as_view(),
        name="federated-worker-join",
    ),
    path("api/jobs/datasources", jobs.DatasourceRecordApi.as_view(), name="job-datasources"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    re_path(spa.SPA_PATH, spa.index, name="spa"),
]
