"""The compliance app's tables; each area keeps its models in its own module."""

from mailvault.compliance.models_audit import (  # noqa: F401
    ArchiveDigestConfig,
    AuditChainHead,
    AuditEntry,
    OperatorAuditEntry,
    StoreVerification,
)
from mailvault.compliance.models_export import ExportJob  # noqa: F401
from mailvault.compliance.models_holds import LegalHold  # noqa: F401
from mailvault.compliance.models_retention import (  # noqa: F401
    ApprovalRequest,
    DeletionLogEntry,
    PendingPurge,
    RetentionPolicy,
    RetentionSettings,
)
