import io
from typing import Any

import numpy as np
import pytest
import torch

from kafkaml.frameworks import (
    ArtifactError,
    ChainError,
    DeviceMoveError,
    InputShapeError,
    ModelCodeError,
    TrainingSettingsError,
    load_artifact,
)
from kafkaml.frameworks.pytorch import PyTorchFramework, default_device
from kafkaml.frameworks.tests import models

PT = PyTorchFramework()
DATA = models.DenseData.random(11)
X, Y = DATA.x, DATA.y
batches = DATA.batches


@pytest.fixture(scope="module")
def dense() -> Any:
    return PT.build(models.PT_IMPORTS, models.PT_DENSE)


def test_dense_module_summary_has_shapes_params_and_leaf_layers(dense: Any) -> None:
    summary = dense.summary()
    assert (summary.input_shape, summary.output_shape) == ([None, 18], [None, 3])
    assert summary.params == models.PT_DENSE_PARAMS
    assert [layer["type"] for layer in summary.layers] == ["Linear", "ReLU"] * 2 + ["Linear"]


def test_convolutional_module_takes_its_declared_input_shape() -> None:
    summary = PT.build(models.PT_IMPORTS, models.PT_CONV).summary()
    assert (summary.input_shape, summary.output_shape) == ([None, 1, 28, 28], [None, 10])
    assert summary.params == models.PT_CONV_PARAMS


def test_module_whose_input_shape_cannot_be_inferred_is_refused() -> None:
    code = models.PT_CONV.replace("input_shape = (1, 28, 28)", "")
    with pytest.raises(ModelCodeError, match="input_shape"):
        PT.build(models.PT_IMPORTS, code)


def test_metrics_without_loss_are_refused() -> None:
    code = models.PT_DENSE.replace('"loss": Loss(self.loss_fn())', '"acc2": Accuracy()')
    with pytest.raises(ModelCodeError, match='"loss"'):
        PT.build(models.PT_IMPORTS, code)


def test_error_inside_loss_fn_reports_its_line() -> None:
    code = models.PT_DENSE.replace("return nn.CrossEntropyLoss()", "return nn.NoSuchLoss()")
    with pytest.raises(ModelCodeError) as caught:
        PT.build(models.PT_IMPORTS, code)
    assert caught.value.line == code.splitlines().index("        return nn.NoSuchLoss()") + 1
    assert "AttributeError" in caught.value.message


def test_predict_batch_matches_the_module_and_refuses_wrong_shapes(dense: Any) -> None:
    with torch.no_grad():
        expected = dense.module(torch.from_numpy(X).to(dense.device)).cpu().numpy()
    np.testing.assert_allclose(dense.predict_batch(X), expected, rtol=1e-6)
    with pytest.raises(InputShapeError):
        dense.predict_batch(X[:, :5])


# Records the device of every input batch and label batch the module and its loss see.
PT_DEVICE_PROBE = """\
class Probe(nn.Module):
    def __init__(self):
        super().__init__()
        self.seen = set()
        self.layers = nn.Sequential(nn.Linear(18, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        self.seen.add(("x", x.device))
        return self.layers(x)

    def loss_fn(self):
        def loss(out, y):
            self.seen.add(("y", y.device))
            return nn.functional.cross_entropy(out, y)
        return loss

    def optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=0.01)

    def metrics(self):
        return {"accuracy": Accuracy(), "loss": Loss(self.loss_fn())}

model = Probe()
"""

CUDA = pytest.param(
    "cuda",
    marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no GPU"),
)


def test_default_device_is_cuda_exactly_when_torch_sees_a_gpu(dense: Any) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_device().type == expected
    assert dense.device.type == expected
    assert {p.device.type for p in dense.module.parameters()} == {expected}


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_explicit_device_trains_and_predicts_with_batches_and_parameters_on_it(
    device: str,
) -> None:
    model = PT.build(models.PT_IMPORTS, PT_DEVICE_PROBE, device=device)
    assert model.device.type == device
    history = PT.fit(model, batches(), fit_kwargs={"epochs": 2}, validation=batches(20))
    assert len(history.validation["loss"]) == 2
    prediction = model.predict_batch(X)
    assert isinstance(prediction, np.ndarray) and prediction.shape == (40, 3)
    assert model.module.seen == {("x", model.device), ("y", model.device)}
    assert {p.device for p in model.module.parameters()} == {model.device}
    state = model.optimizer().state[next(model.module.parameters())]
    assert isinstance(state["exp_avg"], torch.Tensor)
    assert state["exp_avg"].device == model.device


def test_moving_a_model_is_refused_once_its_optimizer_exists() -> None:
    fresh = PT.build(models.PT_IMPORTS, models.PT_DENSE, device="cpu")
    fresh.move_to("meta")  # a device every machine has, to move to without a GPU
    assert fresh.device.type == "meta"
    assert {p.device.type for p in fresh.module.parameters()} == {"meta"}

    trained = PT.build(models.PT_IMPORTS, models.PT_DENSE, device="cpu")
    PT.fit(trained, batches(), fit_kwargs={"epochs": 1})
    trained.move_to("cpu")  # where it already is: nothing to move
    with pytest.raises(DeviceMoveError, match="optimizer"):
        trained.move_to("meta")
    assert trained.device.type == "cpu"
    assert {p.device.type for p in trained.module.parameters()} == {"cpu"}


def test_chain_of_tiers_on_different_devices_is_refused() -> None:
    edge, cloud = (
        PT.build(models.PT_IMPORTS, code, device="cpu")
        for code in (models.PT_EDGE, models.PT_CLOUD)
    )
    cloud.move_to("meta")
    with pytest.raises(ChainError, match="one device"):
        PT.chain([edge, cloud])


def test_saved_weights_are_cpu_tensors_whatever_the_model_device(dense: Any) -> None:
    state = torch.load(io.BytesIO(dense.save()), weights_only=True)
    assert {t.device.type for t in state.values()} == {"cpu"}
    loaded = PT.load(dense.save(), imports=models.PT_IMPORTS, code=models.PT_DENSE, device="cpu")
    assert loaded.device.type == "cpu"
    np.testing.assert_allclose(loaded.predict_batch(X), dense.predict_batch(X), rtol=1e-5)


def test_save_load_predict_gives_identical_outputs(dense: Any) -> None:
    loaded = load_artifact(
        "pytorch", dense.save(), "pytorch", imports=models.PT_IMPORTS, code=models.PT_DENSE
    )
    np.testing.assert_array_equal(loaded.predict_batch(X), dense.predict_batch(X))


def test_weights_that_do_not_fit_the_code_are_an_artifact_error(dense: Any) -> None:
    with pytest.raises(ArtifactError, match="do not load"):
        load_artifact(
            "pytorch", dense.save(), "pytorch", imports=models.PT_IMPORTS, code=models.PT_CONV
        )


def test_onnx_export_load_predict_is_identical_across_loads_and_matches_torch(dense: Any) -> None:
    exported = dense.export_onnx()
    first = load_artifact("pytorch", exported, "onnx")
    second = load_artifact("pytorch", exported, "onnx")
    np.testing.assert_array_equal(first.predict_batch(X), second.predict_batch(X))
    np.testing.assert_allclose(first.predict_batch(X), dense.predict_batch(X), atol=1e-6)
    assert first.summary().input_shape == [None, 18]


def test_fit_reports_every_epoch_and_evaluate_returns_the_module_metrics() -> None:
    model = PT.build(models.PT_IMPORTS, models.PT_DENSE)
    seen = []
    history = PT.fit(
        model,
        batches(),
        fit_kwargs={"max_epochs": 2},
        validation=batches(20),
        on_epoch_end=lambda epoch, train, val: seen.append((epoch, set(train), set(val))),
    )
    assert seen == [(e, {"accuracy", "loss"}, {"accuracy", "loss"}) for e in range(2)]
    assert len(history.train["loss"]) == 2
    assert set(PT.evaluate(model, batches(), eval_kwargs={})) == {"accuracy", "loss"}


def test_unknown_fit_arguments_are_a_settings_error() -> None:
    model = PT.build(models.PT_IMPORTS, models.PT_DENSE)
    with pytest.raises(TrainingSettingsError) as caught:
        PT.fit(model, batches(), fit_kwargs={"epochs": 1, "shuffle": True})
    assert caught.value.field == "fit_kwargs"


def test_successive_fits_continue_with_the_same_optimizer_state() -> None:
    model = PT.build(models.PT_IMPORTS, models.PT_DENSE)
    PT.fit(model, batches(), fit_kwargs={"epochs": 1})
    optimizer = model.optimizer()
    steps = optimizer.state[next(model.module.parameters())]["step"].item()
    PT.fit(model, batches(), fit_kwargs={"epochs": 1})
    assert model.optimizer() is optimizer
    assert optimizer.state[next(model.module.parameters())]["step"].item() == 2 * steps


def test_early_exit_lower_tier_predicts_to_upper_and_prediction_also_through_onnx() -> None:
    code = (
        "class Edge(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.body, self.exit = nn.Linear(18, 8), nn.Linear(8, 3)\n"
        "    def forward(self, x):\n"
        "        hidden = torch.relu(self.body(x))\n"
        "        return hidden, torch.softmax(self.exit(hidden), dim=1)\n"
        "model = Edge()\n"
    )
    edge = PT.build(models.PT_IMPORTS, code, require_training=False)
    assert edge.summary().output_shape == [[None, 8], [None, 3]]
    to_upper, prediction = edge.predict_batch(X)
    assert (to_upper.shape, prediction.shape) == ((40, 8), (40, 3))
    served = load_artifact("pytorch", edge.export_onnx(), "onnx")
    onnx_upper, onnx_prediction = served.predict_batch(X)
    np.testing.assert_allclose(onnx_upper, to_upper, atol=1e-6)
    np.testing.assert_allclose(onnx_prediction, prediction, atol=1e-6)


def test_three_tier_early_exit_chain_trains_every_exit_and_splits_metrics() -> None:
    tiers = [
        PT.build(models.PT_IMPORTS, c) for c in (models.PT_EDGE, models.PT_FOG, models.PT_CLOUD)
    ]
    before = [tier.save() for tier in tiers]
    chain = PT.chain(tiers)
    assert chain.summary().output_shape == [[None, 3]] * 3
    seen: list[dict[str, float]] = []
    PT.fit(chain, batches(), fit_kwargs={"epochs": 2}, on_epoch_end=lambda e, t, v: seen.append(t))
    assert len(seen) == 2
    per_tier = PT.split_metrics(PT.evaluate(chain, batches(), eval_kwargs={}), 3)
    assert [set(m) for m in per_tier] == [{"accuracy", "loss"}] * 3
    assert all(tier.save() != saved for tier, saved in zip(tiers, before, strict=True))
