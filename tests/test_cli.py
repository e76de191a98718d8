"""The ``mailvault`` console command: ``tenant create|list|suspend|resume`` and bad input.

Most cases use ``call_command``; one runs the installed ``.venv/bin/mailvault`` script in a
subprocess against a fresh SQLite database in a temporary MAILVAULT_VAR_DIR.
"""

from __future__ import annotations

import io
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.hashers import check_password
from django.core.management import call_command
from django.core.management.base import CommandError

from mailvault.accounts.models import User
from mailvault.tenancy.models import Tenant
from mailvault.tenancy.provisioning import provision_tenant

MAILVAULT = Path(sys.executable).parent / "mailvault"


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("tenant", *args, stdout=out)
    return out.getvalue()


def _credentials(output: str) -> tuple[str, str]:
    username = re.search(r"^username: (\S+)$", output, re.M)
    password = re.search(r"^password: (\S+)$", output, re.M)
    assert username and password, output
    return username.group(1), password.group(1)


@pytest.mark.django_db
def test_create_prints_working_credentials() -> None:
    output = _run("create", "acme", "--display-name", "ACME Corp")
    username, password = _credentials(output)
    assert username == "admin@acme"
    assert "shown once" in output
    tenant = Tenant.objects.get(name="acme")
    assert tenant.display_name == "ACME Corp"
    user = authenticate(username=username, password=password)
    assert isinstance(user, User)
    assert user.tenant_id == tenant.pk
    assert user.must_change_password
    assert user.is_provisioned_admin
    assert "admin" in user.roles


@pytest.mark.django_db
def test_create_normalizes_case() -> None:
    _run("create", "  BigCo ")
    assert Tenant.objects.filter(name="bigco").exists()


@pytest.mark.django_db
def test_list() -> None:
    provision_tenant("zeta")
    provision_tenant("alpha")
    lines = _run("list").strip().splitlines()
    assert [line.split("\t")[1:] for line in lines] == [["alpha", "active"], ["zeta", "active"]]


@pytest.mark.django_db
def test_suspend_and_resume() -> None:
    provisioned = provision_tenant("acme")
    assert "acme suspended" in _run("suspend", "acme")
    assert Tenant.objects.get(name="acme").status == Tenant.Status.SUSPENDED
    assert "acme\tsuspended" in _run("list")
    assert authenticate(username="admin@acme", password=provisioned.admin_password) is None
    assert "acme resumed" in _run("resume", "acme")
    assert Tenant.objects.get(name="acme").is_active
    assert authenticate(username="admin@acme", password=provisioned.admin_password) is not None


@pytest.mark.django_db
def test_duplicate_name_refused() -> None:
    provision_tenant("acme")
    with pytest.raises(CommandError, match="A tenant named acme exists already"):
        _run("create", "acme")
    assert Tenant.objects.filter(name="acme").count() == 1
    assert User.unscoped.filter(username="admin@acme").count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name", ["Bad_Name", "-acme", "acme-", "a" * 64, "acme.example", "", "ac me", "äcme"]
)
def test_invalid_name_refused(name: str) -> None:
    with pytest.raises(CommandError):
        _run("create", name)
    assert not Tenant.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["suspend", "resume"])
def test_unknown_tenant(action: str) -> None:
    with pytest.raises(CommandError, match="No tenant named 'ghost'"):
        _run(action, "ghost")


@pytest.mark.django_db
def test_unknown_subcommand() -> None:
    with pytest.raises(CommandError, match="invalid choice: 'frobnicate'"):
        _run("frobnicate")
    with pytest.raises(CommandError, match="required"):
        _run()
    with pytest.raises(CommandError, match="arguments are required: name"):
        _run("create")


@pytest.mark.django_db
def test_user_reset_password_command() -> None:
    provision_tenant("acme")
    out = io.StringIO()
    call_command("user", "reset-password", "ADMIN@acme", stdout=out)
    _, password = _credentials(out.getvalue())
    user = authenticate(username="admin@acme", password=password)
    assert isinstance(user, User) and user.must_change_password
    with pytest.raises(CommandError, match="No user named"):
        call_command("user", "reset-password", "ghost@acme")


# --- the real console script -----------------------------------------------------------


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    var_dir = tmp_path_factory.mktemp("var")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "MAILVAULT_"))}
    env["MAILVAULT_VAR_DIR"] = str(var_dir)
    env["MAILVAULT_PASSWORD_HASHERS"] = "django.contrib.auth.hashers.MD5PasswordHasher"
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MAILVAULT), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_console_script_end_to_end(cli_env: dict[str, str]) -> None:
    assert MAILVAULT.exists()
    migrate = _cli(cli_env, "migrate", "--no-input", "-v", "0")
    assert migrate.returncode == 0, migrate.stderr
    created = _cli(cli_env, "tenant", "create", "acme")
    assert created.returncode == 0, created.stderr
    username, password = _credentials(created.stdout)
    assert username == "admin@acme"
    assert Path(cli_env["MAILVAULT_VAR_DIR"], "mailvault.sqlite3").exists()

    # The printed password works against the hash the command stored.
    database = Path(cli_env["MAILVAULT_VAR_DIR"], "mailvault.sqlite3")
    with closing(sqlite3.connect(database)) as conn:
        (encoded,) = conn.execute(
            "SELECT password FROM accounts_user WHERE username = ?", (username,)
        ).fetchone()
    assert check_password(password, encoded)
    assert not check_password(password + "x", encoded)

    listed = _cli(cli_env, "tenant", "list")
    assert listed.returncode == 0 and "\tacme\tactive" in listed.stdout
    suspended = _cli(cli_env, "tenant", "suspend", "acme")
    assert suspended.returncode == 0 and "acme suspended" in suspended.stdout
    with closing(sqlite3.connect(database)) as conn:
        assert conn.execute("SELECT status FROM tenancy_tenant").fetchall() == [("suspended",)]

    duplicate = _cli(cli_env, "tenant", "create", "acme")
    assert duplicate.returncode != 0
    assert "A tenant named acme exists already" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr

    invalid = _cli(cli_env, "tenant", "create", "Not_Valid")
    assert invalid.returncode != 0
    assert "lower-case letters" in invalid.stderr and "Traceback" not in invalid.stderr


def test_console_script_unknown_subcommand(cli_env: dict[str, str]) -> None:
    result = _cli(cli_env, "tenant", "frobnicate")
    assert result.returncode != 0
    assert "invalid choice: 'frobnicate'" in result.stderr
    assert "Traceback" not in result.stderr
    unknown = _cli(cli_env, "no-such-command")
    assert unknown.returncode != 0
    assert "Unknown command: 'no-such-command'" in unknown.stderr
