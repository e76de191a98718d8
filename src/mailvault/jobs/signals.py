"""Deleting a configuration deletes its schedules.

Schedules refer to configurations by (model label, pk), not by foreign key, so the
database cannot cascade; this post_delete receiver does, for every model that some
process type names as its configuration. Code that deletes with ``QuerySet.update`` or
raw SQL bypasses signals and must call :func:`mailvault.jobs.services.delete_schedules_for`.
Past process log entries keep their snapshotted configuration name.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.models.signals import post_delete
from django.dispatch import receiver

from mailvault.jobs import registry


@receiver(post_delete, dispatch_uid="mailvault.jobs.delete_schedules_of_configuration")
def delete_schedules_of_configuration(
    sender: type[models.Model], instance: models.Model, **kwargs: Any
) -> None:
    if sender._meta.label_lower not in registry.config_labels():
        return
    from mailvault.jobs.services import delete_schedules_for

    delete_schedules_for(instance)
