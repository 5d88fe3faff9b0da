"""Sample model code and object builders for the backend's tests (no test doubles: models are
stored through the same service the API uses, with summaries from the real executor)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.core.files.base import ContentFile

from backend.apps.mlmodels.models import Configuration, MLModel
from backend.apps.mlmodels.services import configuration_create, model_create_validated
from backend.apps.training import services as training
from backend.apps.training.models import Deployment, TrainingMode, TrainingResult


@dataclass(frozen=True)
class ModelCode:
    framework: str
    imports: str
    code: str
    distributed: bool = False


TF_MODEL = ModelCode(
    "tensorflow",
    "import keras",
    "model = keras.Sequential([\n"
    "    keras.Input((4,)),\n"
    "    keras.layers.Dense(8, activation='relu'),\n"
    "    keras.layers.Dense(3, activation='softmax'),\n"
    "])\n"
    "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy',\n"
    "              metrics=['accuracy'])",
)

PYTORCH_MODEL = ModelCode(
    "pytorch",
    "import torch\nfrom ignite.metrics import Accuracy, Loss",
    "class Net(torch.nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.layers = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(),\n"
    "                                          torch.nn.Linear(8, 3))\n"
    "    def forward(self, x):\n"
    "        return self.layers(x)\n"
    "    def loss_fn(self):\n"
    "        return torch.nn.CrossEntropyLoss()\n"
    "    def optimizer(self):\n"
    "        return torch.optim.Adam(self.parameters(), lr=0.01)\n"
    "    def metrics(self):\n"
    "        return {'loss': Loss(self.loss_fn()), 'accuracy': Accuracy()}\n"
    "model = Net()",
)

# An early-exit chain, top (cloud) first: the lower tier outputs (to_upper, prediction).
TF_CHAIN = (
    ModelCode(
        "tensorflow",
        "import keras",
        "keras.Sequential([keras.Input((8,)), keras.layers.Dense(3, activation='softmax')],\n"
        "                 name='cloud')",
        distributed=True,
    ),
    ModelCode(
        "tensorflow",
        "import keras",
        "inputs = keras.Input((4,))\n"
        "hidden = keras.layers.Dense(8, activation='relu')(inputs)\n"
        "exit_ = keras.layers.Dense(3, activation='softmax')(hidden)\n"
        "keras.Model(inputs, [hidden, exit_], name='edge')",
        distributed=True,
    ),
)

# A bad line 2 of the code field: the executor names it.
BAD_CODE = "import keras", "model = keras.Sequential()\nmodel.add(undefined_layer)\n"


def stored_model(
    owner: User,
    summaries: dict[str, dict[str, Any]],
    sample: str = "tf",
    name: str = "m",
    upper: MLModel | None = None,
) -> MLModel:
    """A model stored through the service the API uses, with its real executor summary."""
    code = {"tf": TF_MODEL, "pytorch": PYTORCH_MODEL, "chain0": TF_CHAIN[0], "chain1": TF_CHAIN[1]}[
        sample
    ]
    return model_create_validated(
        owner=owner,
        name=name,
        framework=code.framework,
        imports=code.imports,
        code=code.code,
        distributed=code.distributed,
        summary=summaries[sample],
        upper=upper,
    )


def deployed(owner: User, models: list[MLModel], **settings: Any) -> Deployment:
    """A deployment of a fresh configuration of `models` (through the services)."""
    configuration: Configuration = configuration_create(owner=owner, name="c", ml_models=models)
    training_settings = training.TrainingSettings(
        **{"batch_size": 8, "fit_kwargs": {"epochs": 1}, **settings}
    )
    return training.deployment_create(
        owner=owner, configuration=configuration, training=training_settings
    )


def finished_result(
    owner: User, model: MLModel, content: bytes = b"trained-model-bytes"
) -> TrainingResult:
    """A result trained to the end through the job services (running, then finished)."""
    deployment = deployed(owner, [model], mode=TrainingMode.CLASSIC)
    result = deployment.results.get()
    training.result_mark_running(result_id=result.pk)
    return training.result_finish(
        result_id=result.pk,
        artifact=ContentFile(content, "model"),
        metrics={"train": {"loss": [0.5]}, "test": {"loss": 0.4}},
    )


def upload(content: bytes, name: str = "model.keras") -> io.BytesIO:
    """A file-like upload for multipart requests."""
    buffer = io.BytesIO(content)
    buffer.name = name
    return buffer
