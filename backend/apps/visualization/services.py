"""Writes of visualization configurations."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from backend.apps.inferences.models import Inference
from backend.apps.visualization.models import Visualization


def visualization_get(*, inference: Inference) -> Visualization:
    """The inference's configuration; an unsaved default one when none was stored."""
    try:
        return inference.visualization
    except Visualization.DoesNotExist:
        return Visualization(inference=inference)


@transaction.atomic
def visualization_set(
    *,
    inference: Inference,
    type: str,
    labels: list[dict[str, Any]],
    average_updated: bool,
    average_window: int,
) -> Visualization:
    """Store (create or replace) how the inference's predictions are drawn."""
    visualization, _ = Visualization.objects.update_or_create(
        inference=inference,
        defaults={
            "type": type,
            "labels": labels,
            "average_updated": average_updated,
            "average_window": average_window,
        },
    )
    return visualization
