"""A local Microsoft 365 emulator (Entra ID + Microsoft Graph v1.0 + Exchange journaling)
that Mailvault's Microsoft 365 connector and its tests talk to over real HTTPS.

See ``shared/product/m365-protocol.md`` for the protocol it plays and
``docs/architecture.md`` for how it is started.
"""
