"""The OpenAPI document and the interactive docs, served without any CDN."""

from __future__ import annotations

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


def test_schema_is_public_openapi_with_bearer_auth() -> None:
    response = Client().get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    paths = set(doc["paths"])
    assert {"/api/v1/users/", "/api/v1/jobs/{run_id}/", "/api/operator/v1/tenants/"} <= paths
    error = doc["components"]["schemas"]["Problem"]
    assert error["properties"]["error"]


@pytest.mark.parametrize("url", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_interactive_docs_use_local_static_files(url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
