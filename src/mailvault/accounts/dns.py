"""TXT lookups for domain verification. The resolver class is a setting so that tests
(and air-gapped installations) can put their own in its place."""

from __future__ import annotations

from typing import Protocol

import dns.exception
import dns.resolver
from django.conf import settings
from django.utils.module_loading import import_string


class TxtResolver(Protocol):
    def txt_records(self, name: str) -> list[str]: ...


class DnsLookupError(Exception):
    pass


class DnsPythonTxtResolver:
    def txt_records(self, name: str) -> list[str]:
        try:
            answer = dns.resolver.resolve(name, "TXT", lifetime=5.0)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            raise DnsLookupError(f"DNS lookup of {name} failed: {exc}") from exc
        records = []
        for rdata in answer:
            records.append(b"".join(rdata.strings).decode("utf-8", "replace"))
        return records


def get_resolver() -> TxtResolver:
    resolver_class = import_string(settings.MAILVAULT_DNS_RESOLVER)
    resolver: TxtResolver = resolver_class()
    return resolver
