"""The Starlette application: Entra ID, Graph, the control API, the admin and Purview pages."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from m365_emulator import admin, control, entra
from m365_emulator.core import Emulator
from m365_emulator.graph_app import GraphApp
from m365_emulator.journal import JournalService


async def home(request: Request) -> Response:
    return RedirectResponse("/_emulator/admin", status_code=302)


def create_app(
    emulator: Emulator, journal_smarthost: str = "127.0.0.1:2525", ndr_to: str = ""
) -> Starlette:
    journal = JournalService(emulator.tenant, journal_smarthost, ndr_to)
    journal.load(getattr(emulator, "saved_journal", []))
    emulator.journal = journal
    routes = [
        Route("/", home),
        Mount("/v1.0", app=GraphApp(emulator)),
        *control.routes(),
        *admin.routes(),
        *entra.routes(),
    ]
    app = Starlette(routes=routes)
    app.state.emulator = emulator
    return app
