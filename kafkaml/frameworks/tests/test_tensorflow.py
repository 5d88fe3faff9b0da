from typing import Any

import numpy as np
import pytest

from kafkaml.frameworks import (
    InputShapeError,
    ModelCodeError,
    TrainingSettingsError,
    load_artifact,
)
from kafkaml.frameworks.tensorflow import TensorFlowFramework
from kafkaml.frameworks.tests import models

TF = TensorFlowFramework()
DATA = models.DenseData.random(7)
X, Y = DATA.x, DATA.y
batches = DATA.batches


@pytest.fixture(scope="module")
def dense() -> Any:
    return TF.build(models.TF_IMPORTS, models.TF_DENSE)


def test_dense_model_summary_has_shapes_params_and_layers(dense: Any) -> None:
    summary = dense.summary()
    assert summary.input_shape == [None, 18]
    assert summary.output_shape == [None, 3]
    assert summary.params == models.TF_DENSE_PARAMS
    assert [layer["type"] for layer in summary.layers] == ["Dense", "Dense", "Dense"]


def test_convolutional_model_summary() -> None:
    summary = TF.build(models.TF_IMPORTS, models.TF_CONV).summary()
    assert (summary.input_shape, summary.output_shape) == ([None, 28, 28, 1], [None, 10])
    assert summary.params == models.TF_CONV_PARAMS
    assert summary.layers[0]["type"] == "Conv2D"


def test_predict_batch_returns_one_row_per_sample_matching_the_keras_call(dense: Any) -> None:
    out = dense.predict_batch(X)
    assert out.shape == (40, 3)
    np.testing.assert_allclose(out, dense.model(X, training=False).numpy(), rtol=1e-6)


def test_predict_batch_refuses_the_wrong_sample_shape(dense: Any) -> None:
    with pytest.raises(InputShapeError, match=r"\[18\]"):
        dense.predict_batch(np.zeros((4, 17), np.float32))


def test_save_load_predict_gives_identical_outputs(dense: Any) -> None:
    loaded = load_artifact("tensorflow", dense.save(), "keras")
    np.testing.assert_array_equal(loaded.predict_batch(X), dense.predict_batch(X))


def test_uncompiled_model_is_refused_outside_a_chain() -> None:
    code = "model = keras.Sequential([keras.Input((2,)), layers.Dense(1)])\n"
    with pytest.raises(ModelCodeError, match="compiled"):
        TF.build(models.TF_IMPORTS, code)


def test_model_without_input_shape_is_refused() -> None:
    code = "model = keras.Sequential([layers.Dense(1)])\nmodel.compile(loss='mse')\n"
    with pytest.raises(ModelCodeError, match=r"keras\.Input"):
        TF.build(models.TF_IMPORTS, code)


def test_fit_reports_every_epoch_and_evaluate_returns_metrics() -> None:
    model = TF.build(models.TF_IMPORTS, models.TF_DENSE)
    seen = []
    history = TF.fit(
        model,
        batches(),
        fit_kwargs={"epochs": 3, "shuffle": False},
        validation=batches(20),
        on_epoch_end=lambda epoch, train, val: seen.append((epoch, set(train), set(val))),
    )
    assert seen == [(e, {"loss", "accuracy"}, {"loss", "accuracy"}) for e in range(3)]
    assert len(history.train["loss"]) == 3 == len(history.validation["accuracy"])
    assert set(TF.evaluate(model, batches(), eval_kwargs={})) == {"loss", "accuracy"}


def test_fit_refuses_arguments_the_job_owns() -> None:
    model = TF.build(models.TF_IMPORTS, models.TF_DENSE)
    with pytest.raises(TrainingSettingsError) as caught:
        TF.fit(model, batches(), fit_kwargs={"epochs": 1, "callbacks": []})
    assert caught.value.field == "fit_kwargs"


def test_three_tier_early_exit_chain_trains_every_exit_and_splits_metrics() -> None:
    tiers = [
        TF.build(models.TF_IMPORTS, code, require_compiled=False)
        for code in (models.TF_EDGE, models.TF_FOG, models.TF_CLOUD)
    ]
    shapes = [(tier.summary().input_shape, tier.summary().output_shape) for tier in tiers]
    assert shapes == [
        ([None, 18], [[None, 8], [None, 3]]),
        ([None, 8], [[None, 8], [None, 3]]),
        ([None, 8], [None, 3]),
    ]
    before = tiers[0].predict_batch(X)[1]
    chain = TF.chain(tiers, optimizer="adam", loss="sparse_categorical_crossentropy")
    TF.fit(chain, batches(), fit_kwargs={"epochs": 2})
    per_tier = TF.split_metrics(TF.evaluate(chain, batches(), eval_kwargs={}), 3)
    assert [set(m) for m in per_tier] == [{"loss", "accuracy"}] * 3
    to_upper, prediction = tiers[0].predict_batch(X)
    assert to_upper.shape == (40, 8)
    assert not np.array_equal(prediction, before), "training the chain trains its tiers"


def test_onnx_export_is_served_by_onnxruntime_with_the_same_outputs(dense: Any) -> None:
    exported = dense.export_onnx()
    served = load_artifact("tensorflow", exported, "onnx")
    np.testing.assert_allclose(served.predict_batch(X), dense.predict_batch(X), rtol=1e-5)
