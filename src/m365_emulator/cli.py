"""``m365-emulator``: run the Microsoft 365 emulator over HTTPS in the foreground."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import uvicorn

from m365_emulator.app import create_app
from m365_emulator.core import Emulator
from m365_emulator.fixture import FixtureOptions, app_credentials
from m365_emulator.tls import ensure_tls


def parser() -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="m365-emulator", description=__doc__)
    p.add_argument("--host", default=env("MAILVAULT_M365_EMULATOR_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(env("MAILVAULT_M365_EMULATOR_PORT", "8443")))
    p.add_argument(
        "--state-dir", type=Path, default=Path(env("MAILVAULT_VAR_DIR", "var")) / "m365-emulator"
    )
    p.add_argument(
        "--fixture",
        choices=("corpus", "generated"),
        default=env("MAILVAULT_M365_EMULATOR_FIXTURE", "corpus"),
        help="corpus: Enron mailboxes from the shared corpus (generated when absent)",
    )
    p.add_argument("--users", type=int, default=40, help="size of a generated tenant")
    p.add_argument("--groups", type=int, default=10, help="groups of a generated tenant")
    p.add_argument(
        "--max-per-folder", type=int, default=None, help="cap corpus messages per folder"
    )
    p.add_argument("--seed", default="mailvault", help="same seed, same ids")
    p.add_argument("--tenant-id", default=None)
    p.add_argument("--consented", action="store_true", help="start with admin consent granted")
    p.add_argument(
        "--journal-smarthost",
        default=f"{env('MAILVAULT_SMTP_HOST', '127.0.0.1')}:{env('MAILVAULT_SMTP_PORT', '2525')}",
        help="host:port journal reports are delivered to (default: Mailvault's listener)",
    )
    p.add_argument(
        "--ndr-to", default="", help="alternate journaling mailbox (JournalingReportNdrTo)"
    )
    return p


def connection_env(state_dir: Path, port: int, seed: str = "mailvault") -> dict[str, str]:
    """Mailvault's MAILVAULT_M365_* settings for an emulator started with this state dir,
    port and seed (creates the CA now, so the bundle exists before the emulator runs)."""
    tls = ensure_tls(state_dir / "tls")
    client_id, secret = app_credentials(seed)
    base = f"https://localhost:{port}"
    return {
        "MAILVAULT_M365_AUTHORITY_BASE": base,
        "MAILVAULT_M365_GRAPH_BASE": base,
        "MAILVAULT_M365_CLIENT_ID": client_id,
        "MAILVAULT_M365_CLIENT_SECRET": secret,
        "MAILVAULT_M365_CA_BUNDLE": str(tls.ca_cert.resolve()),
    }


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    options = FixtureOptions(
        kind=args.fixture,
        seed=args.seed,
        users=args.users,
        groups=args.groups,
        max_per_folder=args.max_per_folder,
        tenant_id=args.tenant_id,
        consented=args.consented,
    )
    tls = ensure_tls(args.state_dir / "tls")
    emulator = Emulator(args.state_dir, options)
    app = create_app(emulator, args.journal_smarthost, args.ndr_to)
    host = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host  # noqa: S104
    base = f"https://{host}:{args.port}"
    # What a Mailvault installation needs to talk to this emulator (authority, secret, CA).
    connection = {
        "authority_base": base,
        "graph_base": base,
        "tenant_id": emulator.tenant.id,
        "client_id": emulator.app.client_id,
        "client_secret": emulator.app.secret,
        "ca_bundle": str(tls.ca_cert.resolve()),
    }
    (args.state_dir / "connection.json").write_text(json.dumps(connection, indent=2))
    print(
        f"[m365-emulator] {base}  tenant {emulator.tenant.id} ({emulator.tenant.display_name})\n"
        f"[m365-emulator] app client id {emulator.app.client_id}  secret {emulator.app.secret}\n"
        f"[m365-emulator] CA certificate {tls.ca_cert}  admin page {base}/_emulator/admin",
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=str(tls.server_cert),
        ssl_keyfile=str(tls.server_key),
        log_level="warning",
        timeout_graceful_shutdown=2,
        lifespan="off",
    )
    return 0
