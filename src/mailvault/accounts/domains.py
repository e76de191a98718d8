"""One spelling per domain: internationalized names are kept in their Unicode form.

``bücher.example`` and its ASCII (punycode) form ``xn--bcher-kva.example`` are the same
domain; mail headers and directories use either. Domains, user names and archive addresses
are stored in the canonical form this module gives, so the two spellings can never be
added twice and an address written either way finds its mailbox.
"""

from __future__ import annotations


def canonical_domain(name: str) -> str:
    """Lowercase, without a trailing dot, ``xn--`` labels decoded (IDNA 2003, as Python's
    codec does). A name that does not decode is returned lowercased as it is."""
    name = name.strip().rstrip(".").casefold()
    if "xn--" not in name:
        return name
    try:
        return name.encode("ascii").decode("idna").casefold()
    except UnicodeError:
        return name


def canonical_address(address: str) -> str:
    """``local@domain`` with the domain in canonical form (the local part lowercased, as
    every address in the archive is)."""
    address = address.strip().casefold()
    local, sep, domain = address.rpartition("@")
    if not sep:
        return address
    return f"{local}@{canonical_domain(domain)}"
