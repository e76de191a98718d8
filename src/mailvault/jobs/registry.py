"""The process types: one place that says what each kind of job is and how it runs.

An app registers its process type where it defines the work::

    @process_type("directory.sync", "Directory synchronization",
                  config_model="directory.DirectoryService", timeout_seconds=3600)
    def sync_directory(ctx: JobContext) -> None:
        service = ctx.config
        ...

The worker looks the type up by name, resolves the configuration (``ctx.config``), and
calls the function with a :class:`~mailvault.jobs.context.JobContext`.

Apps name the modules holding their process types in ``AppConfig.ready()`` with
:func:`provided_by`; those are imported on the first lookup, not at start-up. A command
that never looks a type up (``mailvault import``, say) then does not import the Graph,
MSAL and LDAP connectors: 0.3 s of its start.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import models

if TYPE_CHECKING:
    from mailvault.jobs.context import JobContext

JobFunction = Callable[["JobContext"], Any]


class UnknownProcessType(LookupError):
    pass


def _default_name(config: models.Model | None) -> str:
    return "" if config is None else str(config)


@dataclass(frozen=True)
class ProcessType:
    name: str
    display_name: str
    function: JobFunction
    config_model: str | None = None  # "app_label.ModelName", or None for no configuration
    timeout_seconds: int = 3600
    resolve_name: Callable[[models.Model | None], str] = _default_name

    @property
    def config_label(self) -> str:
        """The lower-case model label stored in Schedule/JobRun.config_type."""
        if self.config_model is None:
            return ""
        return apps.get_model(self.config_model)._meta.label_lower

    def load_config(self, config_id: str) -> models.Model | None:
        """The configuration object, or None when the type has none.

        Raises the model's DoesNotExist when the configuration was deleted. Runs inside
        the run's tenant context, so a tenant-owned configuration is scoped as usual.
        """
        if self.config_model is None:
            return None
        model = apps.get_model(self.config_model)
        return model._default_manager.get(pk=config_id)


_REGISTRY: dict[str, ProcessType] = {}
_PROVIDERS: list[str] = []  # modules registering process types, not imported yet
_LOADING = threading.RLock()  # re-entrant: a provider may import another one
_importing = 0  # providers being imported now (another thread's lookup waits for them)


def provided_by(*modules: str) -> None:
    """Declare modules whose import registers process types; see the module docstring."""
    with _LOADING:
        _PROVIDERS.extend(m for m in modules if m not in _PROVIDERS)


def _load_providers() -> None:
    global _importing
    if not _PROVIDERS and not _importing:
        return
    with _LOADING:
        while _PROVIDERS:
            module = _PROVIDERS.pop(0)
            _importing += 1
            try:
                importlib.import_module(module)
            except BaseException:
                _PROVIDERS.insert(0, module)  # the next lookup tries again (and fails loudly)
                raise
            finally:
                _importing -= 1


def process_type(
    name: str,
    display_name: str,
    *,
    config_model: str | None = None,
    timeout_seconds: int = 3600,
    resolve_name: Callable[[models.Model | None], str] | None = None,
) -> Callable[[JobFunction], JobFunction]:
    """Register the decorated function as the work of process type ``name``."""
    if timeout_seconds <= 0:
        raise ValueError("timeout_seconds must be positive")

    def decorator(func: JobFunction) -> JobFunction:
        register(
            ProcessType(
                name=name,
                display_name=display_name,
                function=func,
                config_model=config_model,
                timeout_seconds=timeout_seconds,
                resolve_name=resolve_name or _default_name,
            )
        )
        return func

    return decorator


def register(ptype: ProcessType) -> ProcessType:
    existing = _REGISTRY.get(ptype.name)
    if existing is not None and existing.function is not ptype.function:
        qualname = getattr(existing.function, "__qualname__", existing.function)
        raise ValueError(f"process type {ptype.name!r} is already registered by {qualname}")
    _REGISTRY[ptype.name] = ptype
    return ptype


def unregister(name: str) -> None:
    """Tests only: remove a type registered for the test."""
    _REGISTRY.pop(name, None)


def get(name: str) -> ProcessType:
    _load_providers()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownProcessType(f"Unknown process type {name!r}") from None


def all_types() -> list[ProcessType]:
    _load_providers()
    return sorted(_REGISTRY.values(), key=lambda p: p.display_name)


def choices() -> list[tuple[str, str]]:
    return [(p.name, p.display_name) for p in all_types()]


def config_labels() -> set[str]:
    """Model labels (lower case) that are configurations of some process type."""
    _load_providers()
    return {p.config_label for p in _REGISTRY.values() if p.config_model}


def display_name(name: str) -> str:
    _load_providers()
    ptype = _REGISTRY.get(name)
    return ptype.display_name if ptype else name
