# The Python images of kafkaml, one target per component, built from the repository root:
#   docker build --target backend -t ghcr.io/kafkaml/backend:0.1.0 .
# (targets: backend, mlcode-executor, model-training, model-inference, kafka-control-logger;
# the web UI has its own frontend/Dockerfile).
#
# One base stage holds what every image shares (Python, the non-root user, the lock file, the
# kafkaml library); the frameworks stage installs TensorFlow and PyTorch once for the executor,
# training and inference images; each component's stage adds only its own folder and command.
FROM docker.io/library/python:3.11.14-slim-bookworm AS base

# HOME: libraries keep caches under $HOME; the root filesystem is read-only, /tmp is a volume.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp
# The user the Kubernetes runner's pods run as (kafkaml.k8s.objects.RUN_AS_USER).
RUN groupadd --gid 10001 kafkaml \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin kafkaml
WORKDIR /app
# Dependencies come from the same lock file as every other install; the components' folders are
# copied after them, so a code edit keeps the dependency layers.
COPY requirements/constraints.txt requirements/constraints.txt
COPY pyproject.toml README.md ./
COPY kafkaml kafkaml

# The base dependencies: no framework, no Django.
FROM base AS core
RUN pip install -c requirements/constraints.txt .

FROM base AS frameworks
RUN pip install -c requirements/constraints.txt ".[tensorflow,pytorch]"

# The Django REST API under gunicorn on :8000, with the Kubernetes runner.
# Migrations: python backend/manage.py migrate (an init container in deploy/k8s).
FROM base AS backend
RUN pip install -c requirements/constraints.txt ".[backend]" \
    && install -d -o 10001 -g 10001 /var/lib/kafkaml
COPY backend backend
USER 10001:10001
ENV KAFKAML_DATA_DIR=/var/lib/kafkaml
EXPOSE 8000
CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", \
     "--access-logfile", "-", "backend.kafkaml_backend.wsgi:application"]

# Records the control topic's messages as datasources in the backend.
FROM core AS kafka-control-logger
COPY kafka_control_logger kafka_control_logger
USER 10001:10001
CMD ["python", "-m", "kafka_control_logger"]

# MQTT topic filters -> Kafka topics.
FROM core AS mqtt-bridge
COPY mqtt_bridge mqtt_bridge
USER 10001:10001
CMD ["python", "-m", "mqtt_bridge"]

# Validates model code in sandboxed child processes, HTTP on :8001.
FROM frameworks AS mlcode-executor
COPY mlcode_executor mlcode_executor
USER 10001:10001
# The pod is the sandbox here (own non-root user, read-only root, no egress: docs/security.md);
# bubblewrap would need user namespaces, which pods usually do not get.
ENV KAFKAML_SANDBOX=none
EXPOSE 8001
CMD ["python", "-m", "mlcode_executor"]

# One process per training Job. PyTorch's wheel carries CUDA 13.0, so the same image trains
# PyTorch models on NVIDIA GPUs (nodes with an R580+ driver; see deploy/k8s/overlays/gpu).
FROM frameworks AS model-training
COPY model_training model_training
USER 10001:10001
CMD ["python", "-m", "model_training"]

# One process per replica of an inference Deployment; :9100 serves its metrics, also the
# liveness and readiness probe of the runner's Deployment.
FROM frameworks AS model-inference
COPY model_inference model_inference
USER 10001:10001
EXPOSE 9100
CMD ["python", "-m", "model_inference"]
