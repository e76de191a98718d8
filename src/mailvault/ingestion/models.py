"""Import configurations: a named "import this server path into that mailbox" that runs
as a job (process type ``ingestion.file_import``), now or on a schedule."""

from __future__ import annotations

from django.db import models

from mailvault.tenancy.models import TenantOwned


class ImportConfiguration(TenantOwned):
    """What Admin Access > Archiving > File Import lists. ``path`` lies inside one of
    ``settings.MAILVAULT_IMPORT_ROOTS`` (checked when saved through the form or
    :func:`mailvault.ingestion.file_import.check_import_path`, and again at run time)."""

    name = models.CharField(max_length=200)
    mailbox = models.ForeignKey(
        "archive.Mailbox", on_delete=models.CASCADE, related_name="import_configurations"
    )
    path = models.CharField(max_length=1024)
    uploaded = models.BooleanField(
        default=False, help_text="The path is a file uploaded through Admin Access."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name
