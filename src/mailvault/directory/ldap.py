"""LDAP / Active Directory: read users, groups and domains with ldap3.

Plain ``ldap://``, StartTLS or LDAPS; certificates checked against the system store or
a CA given in the configuration, unless "accept all certificates" is on. Paged searches
(500 entries per page). The attribute mapping names which attribute holds what; the
defaults suit OpenLDAP's inetOrgPerson/groupOfNames, :data:`AD_ATTRIBUTES` Active
Directory. "Enabled users only" uses the mapping's ``enabled_filter`` (Active Directory:
the ACCOUNTDISABLE bit of userAccountControl).
"""

from __future__ import annotations

import ssl
import uuid
from typing import Any

from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.conv import escape_bytes, escape_filter_chars

from mailvault.accounts.secrets import reveal
from mailvault.directory.models import DirectoryService
from mailvault.directory.sealing import unseal
from mailvault.directory.types import DirDomain, Directory, DirGroup, DirUser, smtp_addresses

DEFAULT_USER_FILTER = "(objectClass=inetOrgPerson)"
DEFAULT_GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"
DEFAULT_ATTRIBUTES: dict[str, str] = {
    "id": "entryUUID",
    "username": "mail",
    "display_name": "cn",
    "mail": "mail",
    "addresses": "mail",
    "group_name": "cn",
    "group_description": "description",
    "member": "member",
    "enabled_filter": "",
}
AD_ATTRIBUTES: dict[str, str] = {
    "id": "objectGUID",
    "username": "userPrincipalName",
    "display_name": "displayName",
    "mail": "mail",
    "addresses": "proxyAddresses",
    "group_name": "cn",
    "group_description": "description",
    "member": "member",
    "enabled_filter": "(!(userAccountControl:1.2.840.113556.1.4.803:=2))",
}
PAGE_SIZE = 500
TIMEOUT = 20


class LdapError(RuntimeError):
    """The directory could not be read; the message says why, for the process log."""


class BindRefused(LdapError):
    """The server answered and refused the DN and password."""


def attributes(service: DirectoryService) -> dict[str, str]:
    merged = dict(DEFAULT_ATTRIBUTES)
    merged.update({k: v for k, v in (service.ldap_attributes or {}).items() if v is not None})
    return merged


def _port(service: DirectoryService) -> int:
    if service.ldap_port:
        return service.ldap_port
    return 636 if service.ldap_security == DirectoryService.Security.LDAPS else 389


def connect(service: DirectoryService) -> Connection:
    """An open connection bound as the service account (LdapError with a readable reason
    otherwise)."""
    bind_dn = service.ldap_bind_dn
    password = unseal(service.ldap_bind_password_sealed, context=f"ldap:{service.pk}")
    if service.ldap_secret is not None:
        value = reveal(service.ldap_secret)
        bind_dn, password = value.username, value.password
    return _bind(service, bind_dn, password)


def _bind(service: DirectoryService, bind_dn: str, password: str) -> Connection:
    security = service.ldap_security
    if service.ldap_accept_all_certificates:
        tls = Tls(validate=ssl.CERT_NONE)
    else:
        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_data=service.ldap_ca_pem or None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
    server = Server(
        service.ldap_host,
        port=_port(service),
        use_ssl=security == DirectoryService.Security.LDAPS,
        tls=tls,
        get_info=NONE,
        connect_timeout=TIMEOUT,
    )
    conn = Connection(
        server,
        user=bind_dn or None,
        password=password or None,
        receive_timeout=TIMEOUT,
        raise_exceptions=False,
        read_only=True,
    )
    try:
        conn.open()  # raises LDAPSocketOpenError when the server cannot be reached
        if security == DirectoryService.Security.STARTTLS and not conn.start_tls():
            raise LdapError(f"StartTLS failed: {conn.result.get('description', 'refused')}.")
        if not conn.bind():
            desc = conn.result.get("description", "") if conn.result else ""
            raise BindRefused(
                f"The bind as {bind_dn or 'anonymous'} was refused ({desc}): "
                "check the bind DN and password."
            )
    except LDAPException as exc:
        conn.unbind()
        raise LdapError(f"LDAP connection to {service.ldap_host} failed: {exc}") from exc
    except LdapError:
        conn.unbind()
        raise
    return conn


def _id_filter(attribute: str, external_id: str) -> str:
    """A filter for the entry whose id attribute holds ``external_id`` (as the sync
    stored it: Active Directory's binary objectGUID as its UUID text)."""
    if attribute.casefold() == "objectguid":
        try:
            raw = uuid.UUID(external_id).bytes_le
        except ValueError:
            raw = None
        if raw is not None:
            return f"({attribute}={escape_bytes(raw)})"
    return f"({attribute}={escape_filter_chars(external_id)})"


def verify_password(service: DirectoryService, external_id: str, password: str) -> bool:
    """Whether the directory accepts ``password`` for the synchronized user whose id is
    ``external_id``: the service account finds the user's entry (within the service's
    base DN and user filter), then the password is tried in a bind as that entry.
    Mailvault never keeps it. An empty password is refused before anything is asked: a
    bind with a DN and no password is an anonymous bind, which LDAP servers accept.
    LdapError when the directory cannot be reached or searched."""
    if not password:
        return False
    attr = attributes(service)
    user_filter = service.ldap_user_filter or DEFAULT_USER_FILTER
    conn = connect(service)
    try:
        entries = _search(
            conn,
            service.ldap_base_dn,
            f"(&{user_filter}{_id_filter(attr['id'], external_id)})",
            [attr["id"]],
        )
    finally:
        conn.unbind()
    if len(entries) != 1:
        return False
    try:
        _bind(service, entries[0]["dn"], password).unbind()
    except BindRefused:
        return False
    return True


def _first(entry: dict[str, Any], name: str) -> str:
    value = entry.get(name)
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, bytes):
        value = str(uuid.UUID(bytes_le=value)) if len(value) == 16 else value.hex()
    return "" if value is None else str(value)


def _all(entry: dict[str, Any], name: str) -> list[str]:
    value = entry.get(name)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values]


def _search(conn: Connection, base: str, flt: str, attrs: list[str]) -> list[dict[str, Any]]:
    try:
        entries = conn.extend.standard.paged_search(
            base, flt, SUBTREE, attributes=attrs, paged_size=PAGE_SIZE, generator=False
        )
    except LDAPException as exc:
        raise LdapError(f"The search {flt} under {base} failed: {exc}") from exc
    if conn.result and conn.result.get("result") not in (0, None):
        raise LdapError(
            f"The search {flt} under {base} failed: {conn.result.get('description')} "
            f"{conn.result.get('message', '')}".strip()
        )
    return [
        {"dn": e["dn"], **dict(e.get("attributes", {}))}
        for e in entries
        if e.get("type") == "searchResEntry"
    ]


def read_directory(service: DirectoryService) -> Directory:
    attr = attributes(service)
    user_filter = service.ldap_user_filter or DEFAULT_USER_FILTER
    group_filter = service.ldap_group_filter or DEFAULT_GROUP_FILTER
    conn = connect(service)
    try:
        user_attrs = sorted(
            {attr["id"], attr["username"], attr["display_name"], attr["mail"], attr["addresses"]}
        )
        raw_users = _search(conn, service.ldap_base_dn, user_filter, user_attrs)
        enabled_ids: set[str] | None = None
        if attr.get("enabled_filter"):
            flt = f"(&{user_filter}{attr['enabled_filter']})"
            enabled_ids = {
                _first(e, attr["id"])
                for e in _search(conn, service.ldap_base_dn, flt, [attr["id"]])
            }
        group_attrs = sorted(
            {attr["id"], attr["group_name"], attr["group_description"], attr["member"]}
        )
        raw_groups = _search(conn, service.ldap_base_dn, group_filter, group_attrs)
    finally:
        conn.unbind()
    directory = Directory()
    dn_to_id: dict[str, str] = {}
    for entry in raw_users:
        uid = _first(entry, attr["id"])
        if not uid:
            continue
        dn_to_id[entry["dn"].casefold()] = uid
        mail = _first(entry, attr["mail"]).casefold()
        addresses = _all(entry, attr["addresses"])
        if attr["addresses"].casefold() == "proxyaddresses":
            primary, all_addresses = smtp_addresses(addresses, mail)
        else:
            primary = mail
            all_addresses = [mail] if mail else []
            all_addresses += [a.casefold() for a in addresses if a.casefold() not in all_addresses]
        username = _first(entry, attr["username"]) or primary
        directory.users[uid] = DirUser(
            id=uid,
            username=username,
            display_name=_first(entry, attr["display_name"]),
            enabled=enabled_ids is None or uid in enabled_ids,
            mail=primary,
            addresses=all_addresses,
            has_mailbox=bool(primary),
        )
        for address in [username, *all_addresses]:
            if "@" in address:
                name = address.rsplit("@", 1)[1].casefold()
                directory.domains.setdefault(name, DirDomain(name=name, verified=True))
    for entry in raw_groups:
        gid = _first(entry, attr["id"])
        if gid:
            dn_to_id[entry["dn"].casefold()] = gid
    for entry in raw_groups:
        gid = _first(entry, attr["id"])
        if not gid:
            continue
        members = [
            dn_to_id[m.casefold()] for m in _all(entry, attr["member"]) if m.casefold() in dn_to_id
        ]
        directory.groups[gid] = DirGroup(
            id=gid,
            name=_first(entry, attr["group_name"]),
            description=_first(entry, attr["group_description"]),
            members=members,
        )
    return directory


def test_connection(service: DirectoryService) -> str:
    """A short success text (LdapError otherwise)."""
    conn = connect(service)
    try:
        ok = conn.search(
            service.ldap_base_dn, "(objectClass=*)", search_scope="BASE", attributes=[]
        )
        if not ok:
            raise LdapError(
                f"Connected, but the base DN {service.ldap_base_dn} cannot be read: "
                f"{conn.result.get('description')}."
            )
    finally:
        conn.unbind()
    return f"Connected to {service.ldap_host}:{_port(service)} and read {service.ldap_base_dn}."
