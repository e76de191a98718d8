"""Schemathesis against the live OpenAPI document, through the WSGI app: generated calls
of every operation must get no server error and answers that match the document."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core import signals
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.django_db

APP = get_wsgi_application()


# Loading the document needs no database: it is public and reads no tenant data.
# Seeded; examples and random generation (valid and invalid data), no coverage phase
# (hundreds of cases per operation: too slow for this suite).
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 20261129,
        "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        "generation": {"mode": "all", "max-examples": 2},
    }
)
schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", APP, config=CONFIG)
# No server errors; every answer's status, content type and body as documented.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    """The WSGI app closes "obsolete" connections around each request, which on
    PostgreSQL is the test's own (inside its transaction); Django's test client
    disconnects the same handler."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


SETTINGS = settings(
    max_examples=2,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schema.exclude(path_regex=r"^/api/operator/").parametrize()
@SETTINGS
def test_tenant_api(case: schemathesis.Case, admin_key_a: str) -> None:
    cache.clear()  # the rate limit is not what this test is about
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_key_a}"}, checks=CHECKS)


@schema.include(path_regex=r"^/api/operator/").exclude(method="DELETE").parametrize()
@SETTINGS
def test_operator_api(case: schemathesis.Case, operator_token: str) -> None:
    cache.clear()
    case.call_and_validate(headers={"Authorization": f"Bearer {operator_token}"}, checks=CHECKS)
