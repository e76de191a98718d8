"""The ``mailvault`` console command's writes into the audit log (actor type "cli").

:func:`audited` wraps one command line. Commands that change data are named in
``DATA_COMMANDS`` (read-only ones such as ``verify`` or ``tenant list`` are not
recorded); the entry goes to the chain of the tenant the command names (``--tenant``, or
the user's tenant for ``user``), otherwise to the operator chain.
"""

from __future__ import annotations

import getpass
import logging
import socket
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailvault.tenancy.models import Tenant

log = logging.getLogger("mailvault.compliance.audit")

# command -> sub-commands that only read (None: every invocation changes data).
DATA_COMMANDS: dict[str, frozenset[str]] = {
    "tenant": frozenset({"list"}),
    "user": frozenset(),
    "import": frozenset(),
    "reindex": frozenset(),
    "recover": frozenset(),
    "createsuperuser": frozenset(),
    "flush": frozenset(),
    "loaddata": frozenset(),
}
_SECRET_WORDS = ("password", "secret", "token", "key")


def is_data_command(args: Sequence[str]) -> bool:
    if not args or args[0] not in DATA_COMMANDS:
        return False
    positional = [a for a in args[1:] if not a.startswith("-")]
    return not (positional and positional[0] in DATA_COMMANDS[args[0]])


def redacted(args: Sequence[str]) -> str:
    """The command line with the values of secret-looking options hidden."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        secret = arg.startswith("-") and any(word in name.lower() for word in _SECRET_WORDS)
        if secret and eq:
            out.append(f"{name}=***")
        else:
            out.append(arg)
            hide_next = secret
    return " ".join(out)


def _option(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _tenant_for(args: Sequence[str]) -> Tenant | None:
    from mailvault.accounts.backends import find_user
    from mailvault.tenancy.models import Tenant

    name = _option(args, "--tenant")
    if name:
        return Tenant.objects.filter(name=name).first()
    if args[0] == "user":
        positional = [a for a in args[1:] if not a.startswith("-")]
        user = find_user(positional[1]) if len(positional) > 1 else None
        return user.tenant if user is not None else None
    return None


def actor() -> str:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return f"{who}@{socket.gethostname()}"


def record_command(args: Sequence[str], *, success: bool, message: str = "") -> None:
    from mailvault.compliance import audit

    audit.record(
        f"cli.{args[0]}",
        tenant=_tenant_for(args),
        actor=actor(),
        actor_type="cli",
        object=redacted(args)[:500],
        request_id=uuid.uuid4().hex,
        success=success,
        message=message or ("completed" if success else "failed"),
    )


@contextmanager
def audited(args: Sequence[str]) -> Iterator[None]:
    """Record the command line ``args`` (without the program name) once it has run."""
    if not is_data_command(args):
        yield
        return
    success, message = True, ""
    try:
        yield
    except SystemExit as exc:
        success = exc.code in (0, None)
        message = "" if success else f"exit status {exc.code}"
        raise
    except BaseException as exc:
        success, message = False, f"{type(exc).__name__}: {exc}"[:2000]
        raise
    finally:
        try:
            record_command(args, success=success, message=message)
        except Exception:
            log.exception("could not record the command %s in the audit log", args[0])
