"""Fields shared by the areas."""

from __future__ import annotations

from typing import Any

from django.db import models
from rest_framework import serializers


class TenantObjectField(serializers.PrimaryKeyRelatedField):
    """An id of a tenant-owned object; the queryset is the active tenant's, read at
    validation time (never at import): another tenant's id is "does not exist"."""

    def __init__(self, model: type[models.Model], **kwargs: Any) -> None:
        self.model = model
        kwargs.setdefault("queryset", model._default_manager.none())
        super().__init__(**kwargs)

    def get_queryset(self) -> models.QuerySet[Any]:
        return self.model._default_manager.all()


class ProblemSerializer(serializers.Serializer):
    """The body of every error answer (documentation only)."""

    class _Error(serializers.Serializer):
        code = serializers.CharField()
        message = serializers.CharField()
        details = serializers.DictField()
        request_id = serializers.CharField()

    error = _Error()
