"""Deployments, training results and every status transition over the REST and job APIs."""

from __future__ import annotations

import io
import json
from typing import Any, cast

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from backend.apps.training.models import ResultStatus, TrainingResult
from backend.kafkaml_backend.auth import issue_job_token
from backend.testing import PYTORCH_MODEL, deployed, stored_model, upload

pytestmark = pytest.mark.django_db

METRICS = {
    "train": {"loss": [0.9, 0.5], "accuracy": [0.4, 0.8]},
    "validation": {"loss": [1.0, 0.6]},
    "test": {"loss": 0.55, "accuracy": 0.75},
    "confusion_matrix": [[3, 1], [0, 4]],
    "training_time_s": 12.5,
}


def job_client(result: TrainingResult) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issue_job_token('result', result.pk)}")
    return client


def configuration_of(api: APIClient, ids: list[int]) -> int:
    response = api.post("/api/configurations", {"name": "c", "ml_model_ids": ids}, format="json")
    assert response.status_code == 201, response.json()
    return int(response.json()["id"])


def test_a_deployment_creates_one_result_per_model_in_state_created(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    tf, torch = stored_model(user, summaries), stored_model(user, summaries, "pytorch")
    response = api.post(
        "/api/deployments",
        {
            "configuration_id": configuration_of(api, [tf.pk, torch.pk]),
            "batch_size": 16,
            "fit_kwargs": {"epochs": 3, "shuffle": True},
            "eval_kwargs": {"verbose": 0},
            "gpus": 1,
            "confusion_matrix": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    deployment = response.json()
    assert deployment["fit_kwargs"] == {"epochs": 3, "shuffle": True}
    results = api.get(f"/api/deployments/{deployment['id']}/results").json()
    assert sorted(r["model_id"] for r in results) == sorted([tf.pk, torch.pk])
    assert {r["status"] for r in results} == {"created"}


def test_a_chain_deployment_needs_mode_distributed_and_gets_one_result_per_tier(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    cloud = stored_model(user, summaries, "chain0", name="cloud")
    edge = stored_model(user, summaries, "chain1", name="edge", upper=cloud)
    configuration = configuration_of(api, [cloud.pk])
    classic = api.post(
        "/api/deployments", {"configuration_id": configuration, "batch_size": 4}, format="json"
    )
    assert classic.status_code == 400
    assert "mode" in classic.json()["extra"]["fields"]
    response = api.post(
        "/api/deployments",
        {"configuration_id": configuration, "batch_size": 4, "mode": "distributed"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["distributed"]["optimizer"] == "adam"  # defaults filled in
    assert len(response.json()["result_ids"]) == 2
    result = TrainingResult.objects.get(model=edge)
    spec = job_client(result).get(f"/api/jobs/results/{result.pk}/spec").json()
    assert len(spec["chain_result_ids"]) == 2


def test_training_settings_are_json_objects_never_strings_to_evaluate(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    configuration = configuration_of(api, [stored_model(user, summaries).pk])
    response = api.post(
        "/api/deployments",
        {
            "configuration_id": configuration,
            "batch_size": 4,
            "fit_kwargs": "epochs=5, shuffle=True",
        },
        format="json",
    )
    assert response.status_code == 400
    assert "fit_kwargs" in response.json()["extra"]["fields"]


def test_indefinite_incremental_training_needs_a_monitoring_metric(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    configuration = configuration_of(api, [stored_model(user, summaries).pk])
    body = {
        "configuration_id": configuration,
        "batch_size": 4,
        "mode": "incremental",
        "incremental": {"indefinite": True},
    }
    assert api.post("/api/deployments", body, format="json").status_code == 400
    body["incremental"] = {"indefinite": True, "monitoring_metric": "val_loss", "change": "down"}
    created = api.post("/api/deployments", body, format="json")
    assert created.status_code == 201
    assert created.json()["incremental"]["stream_timeout_ms"] == 60_000


def test_a_federated_deployment_gets_its_options_with_defaults_in_the_job_spec(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    configuration = configuration_of(api, [stored_model(user, summaries).pk])
    body = {
        "configuration_id": configuration,
        "batch_size": 4,
        "mode": "federated",
        "federated": {"rounds": 3, "min_clients": 2, "strategy": "fedprox"},
    }
    created = api.post("/api/deployments", body, format="json")
    assert created.status_code == 201, created.json()
    options = created.json()["federated"]
    assert (options["rounds"], options["min_clients"], options["local_epochs"]) == (3, 2, 1)
    assert (options["mu"], options["round_timeout_s"]) == (0.01, 300)
    result = TrainingResult.objects.get(pk=created.json()["result_ids"][0])
    spec = job_client(result).get(f"/api/jobs/results/{result.pk}/spec").json()
    assert spec["training"]["federated"]["strategy"] == "fedprox"
    body["federated"] = {"strategy": "fedsgd"}
    assert api.post("/api/deployments", body, format="json").status_code == 400


def test_a_federated_deployment_of_two_models_is_refused_before_anything_starts(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    models = [stored_model(user, summaries).pk for _ in range(2)]
    body = {"configuration_id": configuration_of(api, models), "batch_size": 4}

    response = api.post("/api/deployments", {**body, "mode": "federated"}, format="json")

    assert response.status_code == 400, response.json()
    assert "one model" in response.json()["message"]
    assert response.json()["extra"]["fields"] == {"mode": ["one model per federated deployment"]}
    assert not TrainingResult.objects.exists()


def test_target_input_reaches_the_job_spec_and_defaults_to_label(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    configuration = configuration_of(api, [stored_model(user, summaries).pk])
    body = {"configuration_id": configuration, "batch_size": 4, "mode": "incremental"}
    plain = api.post("/api/deployments", body, format="json")
    created = api.post("/api/deployments", {**body, "target": "input"}, format="json")

    assert plain.json()["target"] == "label"
    assert created.status_code == 201, created.json()
    assert created.json()["target"] == "input"
    result = TrainingResult.objects.get(pk=created.json()["result_ids"][0])
    spec = job_client(result).get(f"/api/jobs/results/{result.pk}/spec").json()
    assert spec["training"]["target"] == "input"


@pytest.mark.parametrize(
    "settings",
    [
        {"mode": "semi-supervised"},
        {"mode": "federated"},
        {"confusion_matrix": True},
        {"target": "output"},
    ],
)
def test_target_input_is_refused_where_the_job_needs_labels(
    api: APIClient, user: Any, summaries: dict[str, Any], settings: dict[str, Any]
) -> None:
    configuration = configuration_of(api, [stored_model(user, summaries).pk])
    body = {"configuration_id": configuration, "batch_size": 4, "target": "input", **settings}
    response = api.post("/api/deployments", body, format="json")

    assert response.status_code == 400, response.json()
    fields = response.json()["extra"]["fields"]
    assert {"target", "confusion_matrix"} & set(fields), fields


def test_the_executor_dry_run_refuses_settings_the_model_cannot_train_with(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    configuration = configuration_of(api, [stored_model(user, summaries).pk])
    from django.conf import settings

    dry_run = settings.KAFKAML.model_copy(update={"validate_training_settings": True})
    with override_settings(KAFKAML=dry_run):
        response = api.post(
            "/api/deployments",
            {
                "configuration_id": configuration,
                "batch_size": 4,
                "fit_kwargs": {"epochs": 1, "no_such_argument": 3},
            },
            format="json",
        )
    assert response.status_code == 400, response.json()
    assert response.json()["extra"]["field"] == "fit_kwargs"


def test_a_result_goes_created_running_finished_with_metrics_and_artifact(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    job = job_client(result)
    spec = job.get(f"/api/jobs/results/{result.pk}/spec").json()
    assert (spec["training"]["batch_size"], spec["training"]["reader"]) == (8, "native")
    assert spec["model"]["code"] == result.model.code
    assert result.deployment is not None
    assert spec["deployment_created_at"].startswith(str(result.deployment.created_at.year))
    assert job.post(f"/api/jobs/results/{result.pk}/running").json()["status"] == "running"
    for epoch, loss in enumerate([0.9, 0.5]):
        reported = job.post(
            f"/api/jobs/results/{result.pk}/epochs",
            {"epoch": epoch, "train": {"loss": loss}, "validation": {"loss": 1.0}},
            format="json",
        )
        assert reported.status_code == 200, reported.json()
    assert api.get(f"/api/results/{result.pk}").json()["train_metrics"] == {"loss": [0.9, 0.5]}
    finished = job.post(
        f"/api/jobs/results/{result.pk}/artifact",
        {"artifact": upload(b"weights"), "metrics": json.dumps(METRICS)},
        format="multipart",
    )
    assert finished.status_code == 200, finished.json()
    body = api.get(f"/api/results/{result.pk}").json()
    assert body["status"] == "finished"
    assert body["test_metrics"] == {"loss": 0.55, "accuracy": 0.75}
    assert body["confusion_matrix"] == [[3, 1], [0, 4]]
    assert body["training_time_s"] == 12.5
    download = api.get(f"/api/results/{result.pk}/artifact")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"weights"  # type: ignore[attr-defined]  # a FileResponse: the stub types every answer as Response


def test_a_failing_job_records_its_reason(
    user: Any, summaries: dict[str, Any], api: APIClient
) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    job = job_client(result)
    job.post(f"/api/jobs/results/{result.pk}/running")
    failed = job.post(
        f"/api/jobs/results/{result.pk}/failure",
        {"reason": "DecodeError at offset 7"},
        format="json",
    )
    assert failed.status_code == 200
    body = api.get(f"/api/results/{result.pk}").json()
    assert (body["status"], body["error"]) == ("failed", "DecodeError at offset 7")


@pytest.mark.parametrize("start", [ResultStatus.CREATED, ResultStatus.RUNNING])
def test_a_user_stops_a_created_or_running_result(
    api: APIClient, user: Any, summaries: dict[str, Any], start: str
) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    TrainingResult.objects.filter(pk=result.pk).update(status=start)
    response = api.post(f"/api/results/{result.pk}/stop")
    assert response.status_code == 200
    assert response.json()["status"] == "stopped"


@pytest.mark.parametrize(
    ("status", "call"),
    [
        ("finished", "stop"),
        ("failed", "stop"),
        ("stopped", "stop"),
        ("finished", "running"),
        ("stopped", "running"),
        ("failed", "running"),
        ("created", "epochs"),
        ("finished", "epochs"),
        ("created", "artifact"),
        ("finished", "artifact"),
        ("stopped", "artifact"),
        ("finished", "failure"),
        ("stopped", "failure"),
    ],
)
def test_transitions_outside_the_status_machine_are_refused_with_409(
    api: APIClient, user: Any, summaries: dict[str, Any], status: str, call: str
) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    TrainingResult.objects.filter(pk=result.pk).update(status=status)
    job = job_client(result)
    requests = {
        "stop": lambda: api.post(f"/api/results/{result.pk}/stop"),
        "running": lambda: job.post(f"/api/jobs/results/{result.pk}/running"),
        "epochs": lambda: job.post(
            f"/api/jobs/results/{result.pk}/epochs",
            {"epoch": 0, "train": {"loss": 1.0}},
            format="json",
        ),
        "artifact": lambda: job.post(
            f"/api/jobs/results/{result.pk}/artifact",
            {"artifact": upload(b"w"), "metrics": "{}"},
            format="multipart",
        ),
        "failure": lambda: job.post(
            f"/api/jobs/results/{result.pk}/failure", {"reason": "x"}, format="json"
        ),
    }
    response = requests[call]()
    assert response.status_code == 409, response.json()
    assert response.json()["extra"]["status"] == status
    result.refresh_from_db()
    assert result.status == status


def test_metrics_that_are_not_finite_numbers_are_refused(
    user: Any, summaries: dict[str, Any]
) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    job = job_client(result)
    job.post(f"/api/jobs/results/{result.pk}/running")
    response = job.post(
        f"/api/jobs/results/{result.pk}/artifact",
        {"artifact": upload(b"w"), "metrics": '{"test": {"loss": NaN}}'},
        format="multipart",
    )
    assert response.status_code == 400
    assert "metrics" in response.json()["extra"]["fields"]


def test_deleting_a_deployment_with_a_running_result_stops_the_result_first(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    deployment = deployed(user, [stored_model(user, summaries)])
    result = deployment.results.get()
    job_client(result).post(f"/api/jobs/results/{result.pk}/running")
    assert api.delete(f"/api/deployments/{deployment.pk}").status_code == 204
    assert not TrainingResult.objects.filter(pk=result.pk).exists()


def test_the_none_runner_reports_that_jobs_are_not_run(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    body = api.get(f"/api/results/{result.pk}/logs").json()
    assert body["state"] == "not-started"
    assert body["logs"] == ""


def test_an_imported_pytorch_model_becomes_a_finished_result_ready_for_inference(
    api: APIClient,
) -> None:
    import torch  # only to write the weights file a user would upload

    shapes = {
        "layers.0.weight": (8, 4),
        "layers.0.bias": (8,),
        "layers.2.weight": (3, 8),
        "layers.2.bias": (3,),
    }
    buffer = io.BytesIO()
    torch.save({name: torch.zeros(shape) for name, shape in shapes.items()}, buffer)
    fields = {
        "name": "imported",
        "framework": "pytorch",
        "artifact_format": "pytorch",
        "imports": PYTORCH_MODEL.imports,
        "code": PYTORCH_MODEL.code,
    }
    response = api.post(
        "/api/models/import",
        {**fields, "artifact": upload(buffer.getvalue(), "m.pt")},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["status"], body["deployment_id"], body["has_artifact"]) == ("finished", None, True)
    garbage = api.post(
        "/api/models/import", {**fields, "artifact": upload(b"junk", "m.pt")}, format="multipart"
    )
    assert garbage.status_code == 400
    assert "weights" in garbage.json()["message"]


def test_an_indefinite_job_snapshot_becomes_a_finished_result_of_the_same_deployment(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    result = deployed(user, [stored_model(user, summaries)]).results.get()
    job = job_client(result)
    snapshot_of_created = job.post(
        f"/api/jobs/results/{result.pk}/snapshots",
        {"artifact": upload(b"w1"), "metrics": "{}"},
        format="multipart",
    )
    assert snapshot_of_created.status_code == 409
    job.post(f"/api/jobs/results/{result.pk}/running")
    response = job.post(
        f"/api/jobs/results/{result.pk}/snapshots",
        {"artifact": upload(b"w1"), "metrics": json.dumps({"validation": {"loss": [0.3]}})},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    snapshot = response.json()
    assert (snapshot["status"], snapshot["snapshot_of_id"]) == ("finished", result.pk)
    assert snapshot["deployment_id"] == result.deployment_id
    download = api.get(f"/api/results/{snapshot['id']}/artifact")
    assert b"".join(download.streaming_content) == b"w1"  # type: ignore[attr-defined]  # a FileResponse: the stub types every answer as Response
    assert api.get(f"/api/results/{result.pk}").json()["status"] == "running"


def test_the_tfio_reader_is_refused_for_pytorch_models(
    api: APIClient, user: Any, summaries: dict[str, Any]
) -> None:
    configuration = configuration_of(api, [stored_model(user, summaries, "pytorch").pk])
    body = {"configuration_id": configuration, "batch_size": 4, "reader": "tfio"}
    response = api.post("/api/deployments", body, format="json")
    assert response.status_code == 400
    assert "reader" in response.json()["extra"]["fields"]


def test_deleting_a_finished_result_removes_its_artifact_file(
    api: APIClient, user: Any, summaries: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    from backend.apps.training.models import artifact_storage
    from backend.testing import finished_result

    result = finished_result(user, stored_model(user, summaries))
    name = cast(str, result.artifact.name)
    assert artifact_storage().exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/results/{result.pk}").status_code == 204
    assert not artifact_storage().exists(name)
    assert api.get(f"/api/results/{result.pk}").status_code == 404
