"""How a worker finds, through the backend, the federated deployments its dataset fits.

The backend matches the worker's registered datasets against the deployments of its owner that
are still training (model input shape, `data_restrictions`, `min_data`); the worker joins
those, and each deployment's coordinator then gets its signing key.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

from kafkaml.rest import BackendError, RestClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assignment:
    """A deployment the worker joined, with the registered dataset that fits it."""

    deployment_id: int
    framework: str
    dataset: str


class Discovery:
    """The worker's calls to the backend, with the credential it was issued.

    Raises kafkaml.rest.BackendError when the backend refuses the credential (unknown or
    revoked: 401) or cannot be reached.
    """

    def __init__(self, rest: RestClient, dataset: str | None = None) -> None:
        self.rest = rest
        self.dataset = dataset

    def worker_id(self) -> str:
        """The id the backend registered the worker under (the sender of its updates)."""
        return str(self.rest.get_json("/api/federated/worker")["worker_id"])

    def still_training(self, deployment_id: int) -> bool:
        """Whether the deployment is still one the worker fits and that is training (True
        while the backend cannot be reached: the rounds may still come)."""
        try:
            matches = self.rest.get_json("/api/federated/worker/deployments")
        except BackendError as error:
            log.warning("deployment %d: backend not reached, still waiting (%s)", deployment_id,
                        error)  # fmt: skip
            return True
        return any(int(match["deployment_id"]) == deployment_id for match in matches)

    def join_new(self, known: Collection[int]) -> list[Assignment]:
        """Join the deployments that fit and are not in `known`; those deployments."""
        found = []
        for match in self.rest.get_json("/api/federated/worker/deployments"):
            deployment = int(match["deployment_id"])
            if deployment in known or self.dataset not in (None, match["dataset"]):
                continue
            if not match["joined"] and not self._join(deployment):
                continue
            log.info("joined deployment %d with dataset %r", deployment, match["dataset"])
            found.append(Assignment(deployment, str(match["framework"]), str(match["dataset"])))
        return found

    def _join(self, deployment: int) -> bool:
        try:
            self.rest.request("POST", f"/api/federated/worker/deployments/{deployment}/join")
        except BackendError as error:
            if error.status not in (400, 404):
                raise
            log.info("deployment %d not joined: %s", deployment, error.reason)  # ended meanwhile
            return False
        return True
