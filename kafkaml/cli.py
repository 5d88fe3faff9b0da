"""The `kafkaml` command line: the platform's API from a shell, over `kafkaml.client`.

    kafkaml login --url http://127.0.0.1:8000 --username admin
    kafkaml models create net --framework pytorch --code net.py
    kafkaml configurations create one --models 1
    kafkaml deploy 1 --epochs 5 --batch-size 32
    kafkaml send 1 data.csv --topic digits
    kafkaml results watch 1
    kafkaml inferences create 1 --input-topic in --output-topic out
    kafkaml predict 1 inputs.npy

Tables for people, `-o json` for scripts. On failure: the API's message on stderr, exit 1.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kafkaml import local, settings_reference
from kafkaml.client import Client, KafkamlError
from kafkaml.client.types import Result, to_json
from kafkaml.kafka import KafkaSettings
from kafkaml.protocol.control import DEFAULT_CONTROL_TOPIC

Handler = Callable[[argparse.Namespace], int]
EXIT_FAILED = 1  # the API refused, or what was waited for failed
EXIT_USAGE = 2  # argparse's own code for a wrong command line


# --- credentials ---------------------------------------------------------------------------


def credentials_path() -> Path:
    """Where `login` keeps the URL and token: per user, readable by that user only."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "kafkaml" / "credentials.json"


def save_credentials(values: dict[str, Any]) -> Path:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created with 0600 before any secret is written, never world-readable even for a moment.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump(values, file)
    os.chmod(path, 0o600)
    return path


def load_credentials() -> dict[str, Any]:
    path = credentials_path()
    if not path.exists():
        raise KafkamlError("not signed in: run `kafkaml login` first")
    stored: dict[str, Any] = json.loads(path.read_text())
    return stored


def _client(args: argparse.Namespace) -> Client:
    stored = load_credentials()
    return Client(
        stored["url"], token=stored["token"], bootstrap_servers=stored.get("bootstrap_servers")
    )


# --- output --------------------------------------------------------------------------------


def _show(args: argparse.Namespace, records: Any, columns: Sequence[str]) -> int:
    """Print records as JSON (`-o json`) or as a table of `columns`."""
    data = to_json(records)
    if args.output == "json":
        print(json.dumps(data, indent=2))
        return 0
    rows = data if isinstance(data, list) else [data]
    if not isinstance(records, list):  # one record: every field, one per line
        width = max(len(k) for k in rows[0])
        for key, value in rows[0].items():
            print(f"{key.upper():<{width}}  {_cell(value, 200)}")
        return 0
    table = [[c.upper() for c in columns]] + [[_cell(r.get(c), 40) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


def _shared_action(
    args: argparse.Namespace, resource: Any, noun: str, columns: Sequence[str]
) -> int | None:
    """Run the actions resources of the client (models, configurations, ...) share: `list`,
    `show ID`, `stop ID`, `delete ID`, `revoke ID`; None for any other action, the caller's."""
    if args.action == "list":
        return _show(args, resource.list(), columns)
    if args.action in ("show", "stop"):
        one = resource.get(args.id) if args.action == "show" else resource.stop(args.id)
        return _show(args, one, columns)
    if args.action == "delete":
        resource.delete(args.id)
        print(f"{noun} {args.id} deleted", file=sys.stderr)
        return 0
    if args.action == "revoke":
        resource.revoke(args.id)
        print(f"{noun} {args.id}'s credential revoked", file=sys.stderr)
        return 0
    return None


def _cell(value: Any, limit: int) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _metrics(values: dict[str, Any]) -> str:
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


# --- commands ------------------------------------------------------------------------------

MODEL_COLUMNS = ["id", "name", "framework", "distributed", "upper_id", "created_at"]
CONFIGURATION_COLUMNS = ["id", "name", "ml_model_ids", "created_at"]
DEPLOYMENT_COLUMNS = [
    "id", "configuration_id", "mode", "target", "batch_size", "result_ids", "created_at"
]  # fmt: skip
RESULT_COLUMNS = ["id", "deployment_id", "model_name", "framework", "status", "test_metrics"]
INFERENCE_COLUMNS = [
    "id", "result_id", "status", "replicas", "ready_replicas", "restarts", "input_topic",
    "output_topic",
]  # fmt: skip
DATASOURCE_COLUMNS = ["id", "deployment_id", "topic", "input_format", "total_msg", "recorded_at"]
WORKER_COLUMNS = ["id", "name", "worker_id", "datasets", "created_at", "revoked_at"]


def _login(args: argparse.Namespace) -> int:
    if args.token:
        token = args.token
        client = Client(args.url, token=token)
    else:
        username = args.username or input("user name: ")
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else None
        if password is None:
            password = getpass.getpass("password: ")
        client = Client(args.url, username=username, password=password)
        token = client.token
    user = client.me()
    values = {"url": client.url, "token": token, "username": user.username}
    if args.bootstrap_servers:
        values["bootstrap_servers"] = args.bootstrap_servers
    path = save_credentials(values)
    print(f"signed in to {client.url} as {user.username} (credentials in {path})")
    return 0


def _logout(args: argparse.Namespace) -> int:
    credentials_path().unlink(missing_ok=True)
    print("signed out")
    return 0


def _models(args: argparse.Namespace) -> int:
    client = _client(args)
    done = _shared_action(args, client.models, "model", MODEL_COLUMNS)
    if done is not None:
        return done
    if args.action == "import":
        result = client.models.import_artifact(
            Path(args.artifact).read_bytes(),
            name=args.name,
            framework=args.framework,
            artifact_format=args.format,
            code=_read(args.code) if args.code else "",
            imports=_read(args.imports) if args.imports else "",
            description=args.description,
        )
        return _show(args, result, RESULT_COLUMNS)
    model = client.models.create(
        name=args.name,
        framework=args.framework,
        code=_read(args.code),
        imports=_read(args.imports) if args.imports else "",
        description=args.description,
        distributed=args.distributed,
        upper_id=args.upper,
    )
    return _show(args, model, MODEL_COLUMNS)


def _configurations(args: argparse.Namespace) -> int:
    client = _client(args)
    done = _shared_action(args, client.configurations, "configuration", CONFIGURATION_COLUMNS)
    if done is not None:
        return done
    configuration = client.configurations.create(
        name=args.name, model_ids=args.models, description=args.description
    )
    return _show(args, configuration, CONFIGURATION_COLUMNS)


def _deploy(args: argparse.Namespace) -> int:
    client = _client(args)
    deployment = client.deployments.create(
        args.configuration,
        batch_size=args.batch_size,
        epochs=args.epochs,
        mode=args.mode,
        fit_kwargs=_json_object(args.fit_kwargs, "--fit-kwargs"),
        eval_kwargs=_json_object(args.eval_kwargs, "--eval-kwargs"),
        description=args.description,
        gpus=args.gpus,
        confusion_matrix=args.confusion_matrix,
        options=_json_object(args.options, "--options") if args.options else None,
        target=args.target,
    )
    return _show(args, deployment, DEPLOYMENT_COLUMNS)


def _deployments(args: argparse.Namespace) -> int:
    done = _shared_action(args, _client(args).deployments, "deployment", DEPLOYMENT_COLUMNS)
    assert done is not None, args.action  # list, show and delete: all shared
    return done


def _results(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.action == "list" and args.deployment:
        return _show(args, client.deployments.results(args.deployment), RESULT_COLUMNS)
    done = _shared_action(args, client.results, "result", RESULT_COLUMNS)
    if done is not None:
        return done
    if args.action == "logs":
        logs = client.results.logs(args.id)
        return _show(args, logs, []) if args.output == "json" else _print(logs.logs)
    if args.action == "download":
        path = client.results.download(args.id, args.file, artifact_format=args.format)
        print(path)
        return 0
    return _watch(args, client)


def _watch(args: argparse.Namespace, client: Client) -> int:
    """A live epoch table until the result is final; exit 1 unless it finished."""
    printed = 0

    def progress(result: Result) -> None:
        nonlocal printed
        if args.output == "json":
            return
        if printed == 0 and not result.epochs:
            print(f"result {result.id}: {result.status}", file=sys.stderr)
        for epoch in result.epochs[printed:]:
            train = _metrics(epoch.get("train", {}))
            validation = _metrics({f"val_{k}": v for k, v in epoch.get("validation", {}).items()})
            print(f"epoch {epoch.get('epoch', printed) + 1:>4}  {train}  {validation}".rstrip())
            printed += 1

    result = client.results.wait(args.id, timeout_s=args.timeout, progress=progress)
    if args.output == "json":
        _show(args, result, RESULT_COLUMNS)
    else:
        print(f"result {result.id}: {result.status}  {_metrics(result.test_metrics)}".rstrip())
        if result.error:
            print(f"error: {result.error}", file=sys.stderr)
    return 0 if result.status == "finished" else EXIT_FAILED


def _inferences(args: argparse.Namespace) -> int:
    client = _client(args)
    done = _shared_action(args, client.inferences, "inference", INFERENCE_COLUMNS)
    if done is not None:
        return done
    if args.action == "scale":
        return _show(args, client.inferences.scale(args.id, args.replicas), INFERENCE_COLUMNS)
    if args.action == "swap":
        return _show(args, client.inferences.swap(args.id, args.result), INFERENCE_COLUMNS)
    if args.action == "logs":
        logs = client.inferences.logs(args.id)
        return _show(args, logs, []) if args.output == "json" else _print(logs.logs)
    inference = client.inferences.create(
        args.result,
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        replicas=args.replicas,
        input_format=args.input_format,
        input_config=_json_object(args.input_config, "--input-config")
        if args.input_config
        else None,
        upper_topic=args.upper_topic,
        limit=args.limit,
        delivery=args.delivery,
    )
    if args.wait:
        inference = client.inferences.wait(inference.id, timeout_s=args.timeout)
    return _show(args, inference, INFERENCE_COLUMNS)


def _datasources(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.action == "list":
        return _show(
            args, client.datasources.list(deployment_id=args.deployment), DATASOURCE_COLUMNS
        )
    if args.action == "show":
        return _show(args, client.datasources.get(args.id), DATASOURCE_COLUMNS)
    client.datasources.replay(args.id, deployment_id=args.deployment)
    print(f"datasource {args.id} announced again for deployment {args.deployment}")
    return 0


def _workers(args: argparse.Namespace) -> int:
    client = _client(args)
    done = _shared_action(args, client.federated_workers, "worker", WORKER_COLUMNS)
    if done is not None:
        return done
    worker, credential = client.federated_workers.create(args.name, _datasets(args.datasets))
    if args.output == "json":
        print(json.dumps({**to_json(worker), "credential": credential}, indent=2))
        return 0
    _show(args, worker, WORKER_COLUMNS)
    print(f"CREDENTIAL  {credential}")
    print(
        "The credential is shown this once: hand it to the data owner, who sets it as "
        "KAFKAML_WORKER_CREDENTIAL for `kafkaml federated-worker`.",
        file=sys.stderr,
    )
    return 0


def _datasets(text: str) -> list[dict[str, Any]]:
    """--datasets: a JSON list, or @FILE holding one."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text()
        except OSError as error:
            raise KafkamlError(f"--datasets: cannot read {text[1:]}: {error.strerror}") from error
    try:
        value = json.loads(text)
    except ValueError as error:
        raise KafkamlError(f"--datasets is not JSON: {error}") from error
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise KafkamlError(
            '--datasets must be a JSON list of objects, like \'[{"name": "ecg", '
            '"input_shape": [64], "dataset_restrictions": {}, "samples": 5000}]\''
        )
    return value


def _send(args: argparse.Namespace) -> int:
    from kafkaml.datasources import RawSink

    stored = load_credentials()
    bootstrap = args.bootstrap_servers or stored.get("bootstrap_servers")
    if not bootstrap:
        raise KafkamlError("no Kafka brokers: give --bootstrap-servers (or at login)")
    x, y = load_table(Path(args.file), args.label_column)
    with RawSink(
        bootstrap, args.topic, args.deployment, validation_rate=args.validation_rate,
        test_rate=args.test_rate, control_topic=args.control_topic,
        progress=args.output != "json",
    ) as sink:  # fmt: skip
        sink.send_many(x, y)
    announced = sink.close()  # already closed by the block: the control message it sent
    if args.output == "json":
        print(json.dumps({"samples": len(x), "topic": announced.topic}))
    else:
        print(f"sent {len(x)} samples to {args.topic} for deployment {args.deployment}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.bootstrap_servers:
        client.kafka = KafkaSettings(bootstrap_servers=args.bootstrap_servers)
    x, _ = load_table(Path(args.file), None)
    answers = client.predict(args.inference, x, timeout_s=args.timeout)
    rows = [
        {"row": i, "key": a.key.decode(errors="replace"), "argmax": a.argmax, "values": a.values}
        for i, a in enumerate(answers)
    ]
    return _show(args, rows, ["row", "argmax", "values"])


def load_table(path: Path, label_column: str | None) -> tuple[Any, Any]:
    """Samples (float32) and labels from a CSV, `.npy` or Parquet file.

    `label_column` (a name, or an index, negative from the end) is split off as the labels;
    None keeps every column as data. A `.npy` file holds samples only, unless a label column
    is given. Raises KafkamlError for a file it cannot read.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            table, names = np.load(path, allow_pickle=False), None
        elif suffix == ".parquet":
            import pandas as pd

            frame = pd.read_parquet(path)
            table, names = frame.to_numpy(), list(frame.columns)
        else:
            table, names = _read_csv(path)
    except (OSError, ValueError, ImportError) as error:
        raise KafkamlError(f"cannot read {path}: {error}") from error
    if label_column is None:
        return np.asarray(table, dtype=np.float32), None
    index = _column_index(label_column, names, table.shape[1])
    labels = table[:, index]
    data = np.delete(table, index, axis=1)
    as_int = labels.astype(np.int64)
    labels = as_int if np.array_equal(as_int, labels) else labels.astype(np.float32)
    return np.asarray(data, dtype=np.float32), labels


def _read_csv(path: Path) -> tuple[Any, list[str] | None]:
    with path.open() as file:
        first = file.readline().strip().split(",")
    try:
        [float(cell) for cell in first]
        header = None
    except ValueError:
        header = first
    table = np.loadtxt(path, delimiter=",", skiprows=1 if header else 0, ndmin=2)
    return table, header


def _column_index(column: str, names: list[str] | None, width: int) -> int:
    if names and column in names:
        return names.index(column)
    try:
        index = int(column)
    except ValueError:
        raise KafkamlError(f"no column {column!r}; the columns are {names}") from None
    if not -width <= index < width:
        raise KafkamlError(f"column {index} is out of range: the file has {width} columns")
    return index % width


def _settings_table(args: argparse.Namespace) -> int:
    if not args.write:
        print(settings_reference.render_table())
        return 0
    reference = settings_reference.TABLE_PAGE
    reference.write_text(settings_reference.page_with_table(reference.read_text()))
    return 0


def _local(args: argparse.Namespace) -> int:
    settings = local.LocalSettings()
    try:
        if args.action == "up":
            local.up(settings)
        elif args.action == "down":
            local.down(settings)
        else:
            return 0 if local.status(settings) else 3
    except local.LocalStackError as error:
        print(f"kafkaml local {args.action}: {error}", file=sys.stderr)
        return 1
    return 0


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as error:
        raise KafkamlError(f"cannot read {path}: {error.strerror}") from error


def _json_object(text: str, option: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise KafkamlError(f"{option} is not JSON: {error}") from error
    if not isinstance(value, dict):
        raise KafkamlError(f"{option} must be a JSON object, like '{{\"shuffle\": true}}'")
    return value


def _print(text: str) -> int:
    print(text)
    return 0


# --- the parser ----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="kafkaml",
        description="kafkaml: train and serve ML models on Kafka streams.",
        epilog="Run `kafkaml COMMAND -h` for a command's options.",
    )
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("-o", "--output", choices=["table", "json"], default="table")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    login = commands.add_parser("login", help="sign in and keep the token", parents=[output])
    login.add_argument("--url", default="http://127.0.0.1:8000", help="the backend's address")
    login.add_argument("--username")
    login.add_argument("--password-stdin", action="store_true", help="read the password")
    login.add_argument("--token", help="an API token instead of a user name and password")
    login.add_argument("--bootstrap-servers", help="Kafka brokers, for send and predict")
    login.set_defaults(handler=_login)
    commands.add_parser("logout", help="forget the stored token").set_defaults(handler=_logout)

    models = _crud(commands, "models", _models, output, create=_model_create)
    imported = models.add_parser(
        "import", help="import a trained model file as a finished result", parents=[output]
    )
    imported.add_argument("name")
    imported.add_argument("artifact", help="the model file")
    imported.add_argument("--framework", required=True, choices=["tensorflow", "pytorch"])
    imported.add_argument("--format", required=True, choices=["keras", "pytorch", "onnx"])
    imported.add_argument("--code", help="file with the model code (PyTorch state dicts)")
    imported.add_argument("--imports", help="file with the imports")
    imported.add_argument("--description", default="")
    _crud(commands, "configurations", _configurations, output, create=_configuration_create)
    _crud(commands, "deployments", _deployments, output, only=("list", "show", "delete"))

    deploy = commands.add_parser("deploy", help="train a configuration", parents=[output])
    deploy.add_argument("configuration", type=int, help="configuration id")
    deploy.add_argument("--batch-size", type=int, default=32)
    deploy.add_argument("--epochs", type=int)
    deploy.add_argument(
        "--mode",
        default="classic",
        choices=["classic", "incremental", "distributed", "semi-supervised", "federated"],
    )
    deploy.add_argument("--fit-kwargs", default="{}", help="JSON object")
    deploy.add_argument("--eval-kwargs", default="{}", help="JSON object")
    deploy.add_argument("--options", help="the mode's options, a JSON object")
    deploy.add_argument("--gpus", type=int, default=0)
    deploy.add_argument("--confusion-matrix", action="store_true")
    deploy.add_argument(
        "--target",
        default="label",
        choices=["label", "input"],
        help="what the models learn to output: the record's label, or their input (autoencoders)",
    )
    deploy.add_argument("--description", default="")
    deploy.set_defaults(handler=_deploy)

    results = _crud(
        commands, "results", _results, output, only=("list", "show", "delete", "stop", "logs")
    )
    results.choices["list"].add_argument("--deployment", type=int)
    watch = results.add_parser("watch", help="epochs as they come; exit 1 unless finished",
                               parents=[output])  # fmt: skip
    watch.add_argument("id", type=int)
    watch.add_argument("--timeout", type=float, default=3600.0, help="seconds")
    download = results.add_parser("download", help="the trained model", parents=[output])
    download.add_argument("id", type=int)
    download.add_argument("-f", "--file", help="where to write it (default: NAME-ID.SUFFIX)")
    download.add_argument("--format", choices=["native", "onnx"], default="native")

    inferences = _crud(
        commands, "inferences", _inferences, output, create=_inference_create,
        only=("list", "show", "delete", "stop", "logs"),
    )  # fmt: skip
    scale = inferences.add_parser("scale", help="change the replica count", parents=[output])
    scale.add_argument("id", type=int)
    scale.add_argument("replicas", type=int)
    swap = inferences.add_parser("swap", help="serve another result's model", parents=[output])
    swap.add_argument("id", type=int)
    swap.add_argument("result", type=int)

    datasources = _crud(commands, "datasources", _datasources, output, only=("list", "show"))
    datasources.choices["list"].add_argument("--deployment", type=int)
    replay = datasources.add_parser("replay", help="announce it again for another deployment")
    replay.add_argument("id", type=int)
    replay.add_argument("--deployment", type=int, required=True)

    workers = _crud(
        commands, "workers", _workers, output, create=_worker_create, only=("list", "show"),
        summary="federated workers: create, list, show, revoke",
    )  # fmt: skip
    workers.add_parser(
        "revoke", help="revoke a worker's credential at once", parents=[output]
    ).add_argument("id", type=int)

    send = commands.add_parser(
        "send", help="stream a CSV, .npy or Parquet file to a deployment", parents=[output]
    )
    send.add_argument("deployment", type=int)
    send.add_argument("file")
    send.add_argument("--topic", required=True)
    send.add_argument("--label-column", default="-1", help="name or index (default: the last)")
    send.add_argument("--validation-rate", type=float, default=0.0)
    send.add_argument("--test-rate", type=float, default=0.0)
    send.add_argument("--control-topic", default=DEFAULT_CONTROL_TOPIC)
    send.add_argument("--bootstrap-servers")
    send.set_defaults(handler=_send)

    predict = commands.add_parser(
        "predict", help="send inputs to an inference and print its answers", parents=[output]
    )
    predict.add_argument("inference", type=int)
    predict.add_argument("file", help="CSV, .npy or Parquet: one input per row")
    predict.add_argument("--timeout", type=float, default=120.0)
    predict.add_argument("--bootstrap-servers")
    predict.set_defaults(handler=_predict)

    stack = commands.add_parser("local", help="run the local stack (broker and services)")
    stack.add_argument("action", choices=["up", "down", "status"])
    stack.set_defaults(handler=_local)
    bridge = commands.add_parser(
        "mqtt-bridge", help="bridge MQTT topics into Kafka (settings: KAFKAML_MQTT_*)"
    )
    bridge.set_defaults(handler=_mqtt_bridge)
    worker = commands.add_parser(
        "federated-worker",
        help="train a federated deployment's rounds on local data (settings: KAFKAML_WORKER_*)",
    )
    worker.set_defaults(handler=_federated_worker)
    table = commands.add_parser("settings-table", help="print the settings reference table")
    table.add_argument("--write", action="store_true", help="rewrite it in docs/settings.md")
    table.set_defaults(handler=_settings_table)
    return top


def _mqtt_bridge(args: argparse.Namespace) -> int:
    from mqtt_bridge.__main__ import main as mqtt_bridge_main  # a component, not the library

    return mqtt_bridge_main()


def _federated_worker(args: argparse.Namespace) -> int:
    # Imported here: it needs the training extras (a framework), which producers do not install.
    from model_training.federated.__main__ import main as worker_main

    return worker_main()


def _crud(
    commands: Any,
    name: str,
    handler: Handler,
    output: argparse.ArgumentParser,
    *,
    create: Callable[[argparse.ArgumentParser], None] | None = None,
    only: Sequence[str] = ("list", "show", "delete"),
    summary: str | None = None,
) -> Any:
    group = commands.add_parser(name, help=summary or f"{name}: {', '.join(only)}")
    group.set_defaults(handler=handler)
    actions = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    if create is not None:
        create(actions.add_parser("create", help=f"create one of the {name}", parents=[output]))
    for action in only:
        sub = actions.add_parser(action, help=f"{action} {name}", parents=[output])
        if action != "list":
            sub.add_argument("id", type=int)
    return actions


def _model_create(command: argparse.ArgumentParser) -> None:
    command.add_argument("name")
    command.add_argument("--framework", required=True, choices=["tensorflow", "pytorch"])
    command.add_argument("--code", required=True, help="file with the model code")
    command.add_argument("--imports", help="file with the imports")
    command.add_argument("--description", default="")
    command.add_argument("--distributed", action="store_true")
    command.add_argument("--upper", type=int, help="the upper model of a distributed chain")


def _worker_create(command: argparse.ArgumentParser) -> None:
    command.description = (
        "Register a data owner's federated worker; prints its credential, shown this once."
    )
    command.add_argument("name")
    command.add_argument(
        "--datasets",
        required=True,
        help="JSON list (or @FILE) of the worker's datasets: name, input_shape, "
        "dataset_restrictions, samples",
    )


def _configuration_create(command: argparse.ArgumentParser) -> None:
    command.add_argument("name")
    command.add_argument(
        "--models", required=True, type=lambda text: [int(i) for i in text.split(",")],
        help="model ids, comma-separated",
    )  # fmt: skip
    command.add_argument("--description", default="")


def _inference_create(command: argparse.ArgumentParser) -> None:
    command.add_argument("result", type=int, help="a finished result's id")
    command.add_argument("--input-topic", required=True)
    command.add_argument("--output-topic", required=True)
    command.add_argument("--replicas", type=int, default=1)
    command.add_argument("--input-format", choices=["RAW", "AVRO", "JSON"])
    command.add_argument("--input-config", help="JSON object (default: from the training data)")
    command.add_argument("--upper-topic", default="")
    command.add_argument(
        "--delivery", choices=["exactly-once", "at-least-once"], default="exactly-once",
        help="at-least-once for consumers that cannot skip transaction markers",
    )  # fmt: skip
    command.add_argument("--limit", type=float)
    command.add_argument("--wait", action="store_true", help="until the replicas run")
    command.add_argument("--timeout", type=float, default=300.0)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args.output = getattr(args, "output", "table")
    try:
        return int(args.handler(args))
    except KafkamlError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # the top of the command: a message, never a traceback
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
