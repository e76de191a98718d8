"""Django settings for Mailvault.

The embedded default needs no configuration at all: SQLite in WAL mode and local files
under ``./var``. Set ``DATABASE_URL`` for PostgreSQL. Everything else is read through
:mod:`mailvault.env`, which refuses malformed values.
"""

from __future__ import annotations

import re
from pathlib import Path

import dj_database_url

from mailvault.env import SettingsError, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(env_str("MAILVAULT_VAR_DIR", str(Path.cwd() / "var"))).resolve()

DEBUG = env_bool("MAILVAULT_DEBUG", False)
SECRET_KEY = env_str("MAILVAULT_SECRET_KEY", "")
if not SECRET_KEY:
    # The embedded default keeps a generated key under var/ so sessions survive restarts.
    from mailvault.secret_key import load_or_create_secret_key

    SECRET_KEY = load_or_create_secret_key(VAR_DIR / "secret_key")

ALLOWED_HOSTS = env_list("MAILVAULT_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("MAILVAULT_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tasks",
    "django_tasks_db",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "mailvault.tenancy",
    "mailvault.accounts",
    "mailvault.directory",
    "mailvault.sources",
    "mailvault.ingestion",
    "mailvault.archive",
    "mailvault.search",
    "mailvault.jobs",
    "mailvault.compliance",
    "mailvault.web",
    "mailvault.api",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outermost of ours: sees every answer (CSRF and role refusals too); X-Request-ID.
    "mailvault.compliance.audit.middleware.AuditMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Under /api/: the API key (not a session) is the user, so its tenant becomes active.
    "mailvault.api.middleware.ApiKeyMiddleware",
    "mailvault.tenancy.middleware.TenantMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "mailvault.accounts.middleware.PasswordChangeRequiredMiddleware",
]

ROOT_URLCONF = "mailvault.urls"
ASGI_APPLICATION = "mailvault.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "mailvault.web.context_processors.navigation",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL", "")
if _database_url:
    try:
        DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
    except ValueError as exc:
        raise SettingsError(f"DATABASE_URL is not a database URL: {exc}") from exc
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(VAR_DIR / "mailvault.sqlite3"),
            "OPTIONS": {
                # WAL lets readers run beside the single writer; IMMEDIATE avoids
                # "database is locked" upgrades from read to write locks.
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": (
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                    "PRAGMA foreign_keys=ON; PRAGMA busy_timeout=20000;"
                ),
            },
        }
    }

# Jobs: the Django tasks API with its database backend (one queue, any number of workers).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# A running job's worker writes a heartbeat this often; a run without one for
# MAILVAULT_JOB_LOST_AFTER_SECONDS is failed as "worker lost" by the reaper.
MAILVAULT_JOB_HEARTBEAT_SECONDS = env_int("MAILVAULT_JOB_HEARTBEAT_SECONDS", 5, minimum=1)
MAILVAULT_JOB_LOST_AFTER_SECONDS = env_int("MAILVAULT_JOB_LOST_AFTER_SECONDS", 60, minimum=2)
# A job past its type's timeout is cancelled; if it does not stop within this grace,
# the worker process gives up on it and restarts (see mailvault.jobs.runner).
MAILVAULT_JOB_HARD_TIMEOUT_GRACE_SECONDS = env_int(
    "MAILVAULT_JOB_HARD_TIMEOUT_GRACE_SECONDS", 30, minimum=1
)
MAILVAULT_PROCESS_LOG_RETENTION_DAYS = env_int(
    "MAILVAULT_PROCESS_LOG_RETENTION_DAYS", 90, minimum=1
)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "mailvault.accounts.backends.TenantUserBackend",
    "mailvault.directory.backends.LdapDirectoryBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "mailvault.accounts.passwords.MailvaultPasswordValidator"},
]
PASSWORD_HASHERS = env_list(
    "MAILVAULT_PASSWORD_HASHERS",
    [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
    ],
)

SESSION_COOKIE_AGE = env_int("MAILVAULT_SESSION_SECONDS", 8 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_FAILURE_VIEW = "mailvault.web.errors.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Login throttling: this many failures within the window lock the account for the window.
LOGIN_MAX_FAILURES = env_int("MAILVAULT_LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("MAILVAULT_LOGIN_LOCKOUT_SECONDS", 15 * 60, minimum=1)
MFA_TRUST_DAYS = 14

# Where domain verification looks up TXT records; tests put a fake resolver here.
MAILVAULT_DNS_RESOLVER = env_str(
    "MAILVAULT_DNS_RESOLVER", "mailvault.accounts.dns.DnsPythonTxtResolver"
)

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
TIME_ZONE = env_str("MAILVAULT_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# Per-tenant full-text indexes (tantivy), one directory per tenant id below this one.
MAILVAULT_INDEX_DIR = Path(env_str("MAILVAULT_INDEX_DIR", str(VAR_DIR / "index"))).resolve()
# The blob store: one directory of pack files and an index per tenant below this one.
# The master key comes from MAILVAULT_MASTER_KEY (base64, 32 bytes); without it a key
# file is generated once here. Back it up apart from the store: without it nothing reads.
MAILVAULT_STORE_DIR = Path(env_str("MAILVAULT_STORE_DIR", str(VAR_DIR / "store"))).resolve()
MAILVAULT_MASTER_KEY_FILE = Path(
    env_str("MAILVAULT_MASTER_KEY_FILE", str(VAR_DIR / "master.key"))
).resolve()
MAILVAULT_STORE_COMPRESSION_LEVEL = env_int("MAILVAULT_STORE_COMPRESSION_LEVEL", 3, minimum=1)
# Compliance exports: written here, downloadable by their requester until they expire.
MAILVAULT_EXPORT_DIR = Path(env_str("MAILVAULT_EXPORT_DIR", str(VAR_DIR / "exports"))).resolve()
MAILVAULT_EXPORT_EXPIRY_HOURS = env_int("MAILVAULT_EXPORT_EXPIRY_HOURS", 72, minimum=1)

# The management API (/api/v1/, operator API /api/operator/v1/): rate limits per key
# ("N/sec|min|hour|day"), page sizes.
MAILVAULT_API_RATE = env_str("MAILVAULT_API_RATE", "600/min")
MAILVAULT_API_OPERATOR_RATE = env_str("MAILVAULT_API_OPERATOR_RATE", "120/min")
MAILVAULT_API_ANON_RATE = env_str("MAILVAULT_API_ANON_RATE", "60/min")
for _name in ("MAILVAULT_API_RATE", "MAILVAULT_API_OPERATOR_RATE", "MAILVAULT_API_ANON_RATE"):
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|m|min|h|hour|d|day)", globals()[_name]):
        raise SettingsError(f"{_name} must look like 600/min (N/sec, min, hour or day).")
MAILVAULT_API_PAGE_SIZE = env_int("MAILVAULT_API_PAGE_SIZE", 50, minimum=1)
MAILVAULT_API_MAX_PAGE_SIZE = env_int("MAILVAULT_API_MAX_PAGE_SIZE", 500, minimum=1)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["mailvault.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["mailvault.api.permissions.IsAdmin"],
    "DEFAULT_THROTTLE_CLASSES": ["mailvault.api.throttling.KeyRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "mailvault.api.pagination.ApiPagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "mailvault.api.errors.exception_handler",
    "DEFAULT_METADATA_CLASS": None,  # OPTIONS describes nothing: the OpenAPI document does
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Mailvault management API",
    "DESCRIPTION": "Everything Admin Access does, for scripts. Authenticate with "
    "`Authorization: Bearer <API key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "mailvault.accounts.roles.Role",
        "DomainKindEnum": "mailvault.accounts.models.Domain.Kind",
        "SecretKindEnum": "mailvault.accounts.secrets.Secret.Kind",
        "AccountSourceEnum": "mailvault.accounts.models.User.Source",
        "DirectoryKindEnum": "mailvault.directory.models.DirectoryService.Kind",
        "LdapSecurityEnum": "mailvault.directory.models.DirectoryService.Security",
        "ProfileTypeEnum": "mailvault.sources.models_profiles.ArchivingProfile.Type",
        "ProfileSecurityEnum": "mailvault.sources.models_profiles.ArchivingProfile.Security",
        "HoldKindEnum": "mailvault.compliance.models_holds.LegalHold.Kind",
        "ExportStatusEnum": "mailvault.compliance.models_export.ExportJob.Status",
        "ExportSourceEnum": "mailvault.compliance.models_export.ExportJob.Source",
        "ExportFormatEnum": "mailvault.compliance.models_export.ExportJob.Format",
        "MailboxKindEnum": "mailvault.archive.models.Mailbox.Kind",
        "JobStatusEnum": "mailvault.jobs.models.JobRun.Status",
        "ScheduleKindEnum": "mailvault.api.serializers.jobs.SCHEDULE_KINDS",
        "TenantStatusEnum": "mailvault.tenancy.models.Tenant.Status",
    },
}

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if env_bool("MAILVAULT_MANIFEST_STATIC", not DEBUG)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

LOGIN_URL = "/adminaccess/login/"

# Journaling: the domain of the journal endpoints' SMTP addresses (its MX must point at
# the SMTP listener), where the listener listens, its spool, and its TLS certificate
# (a self-signed one is generated under var/ when none is given).
MAILVAULT_JOURNAL_DOMAIN = env_str("MAILVAULT_JOURNAL_DOMAIN", "journal.mailvault.localhost")
MAILVAULT_SMTP_HOST = env_str("MAILVAULT_SMTP_HOST", "127.0.0.1")
MAILVAULT_SMTP_PORT = env_int("MAILVAULT_SMTP_PORT", 2525, minimum=1)
MAILVAULT_SMTP_MAX_MESSAGE_BYTES = env_int(
    "MAILVAULT_SMTP_MAX_MESSAGE_BYTES", 150 << 20, minimum=1024
)
MAILVAULT_SMTP_MAX_RECIPIENTS = env_int("MAILVAULT_SMTP_MAX_RECIPIENTS", 1000, minimum=1)
# The Microsoft 365 emulator (package m365_emulator) that `mailvault run` starts beside
# Mailvault over HTTPS; its state (generated CA, signing key, consent, journal rules) is
# kept in var/m365-emulator.
MAILVAULT_M365_EMULATOR = env_bool("MAILVAULT_M365_EMULATOR", True)
MAILVAULT_M365_EMULATOR_PORT = env_int("MAILVAULT_M365_EMULATOR_PORT", 8443, minimum=1)
MAILVAULT_SMTP_SPOOL_LIMIT_BYTES = env_int("MAILVAULT_SMTP_SPOOL_LIMIT_BYTES", 2 << 30, minimum=1)
# Listener processes sharing the SMTP port (SO_REUSEPORT); 0 means one per CPU.
MAILVAULT_SMTP_PROCESSES = env_int("MAILVAULT_SMTP_PROCESSES", 0, minimum=0)
MAILVAULT_SMTP_TLS_CERT = env_str("MAILVAULT_SMTP_TLS_CERT", "")
MAILVAULT_SMTP_TLS_KEY = env_str("MAILVAULT_SMTP_TLS_KEY", "")
MAILVAULT_SPOOL_DIR = Path(env_str("MAILVAULT_SPOOL_DIR", str(VAR_DIR / "spool"))).resolve()

# Server-side folders that Admin Access may import from (the CLI may import from anywhere).
MAILVAULT_IMPORT_ROOTS = env_list("MAILVAULT_IMPORT_ROOTS", [str(VAR_DIR / "import")])
# Largest file Admin Access > File Import accepts as an upload (streamed to disk).
MAILVAULT_IMPORT_UPLOAD_MAX_BYTES = env_int(
    "MAILVAULT_IMPORT_UPLOAD_MAX_BYTES", 20 * 1024**3, minimum=1
)
# Largest request body anywhere else (checked before Django reads it: web/body_limit.py).
MAILVAULT_REQUEST_MAX_BYTES = env_int("MAILVAULT_REQUEST_MAX_BYTES", 64 << 20, minimum=1)
# Messages per batch of the file import job: progress and cancel checks come per batch.
MAILVAULT_IMPORT_JOB_BATCH = env_int("MAILVAULT_IMPORT_JOB_BATCH", 100, minimum=1)
# A file import commits its database transaction at most this often (batches in between
# share it; 0: every batch commits). Longer is faster on SQLite (ingestion/grouped_
# transaction.py) but holds the write lock longer and shows progress less often.
MAILVAULT_IMPORT_COMMIT_MS = env_int("MAILVAULT_IMPORT_COMMIT_MS", 1000, minimum=0)

# Microsoft 365 / Entra ID: the two base URLs (the real cloud by default; the emulator's in
# tests), the app registration's client id and secret, and a CA bundle for HTTPS (empty:
# the system's trust store).
MAILVAULT_M365_AUTHORITY_BASE = env_str(
    "MAILVAULT_M365_AUTHORITY_BASE", "https://login.microsoftonline.com"
).rstrip("/")
MAILVAULT_M365_GRAPH_BASE = env_str(
    "MAILVAULT_M365_GRAPH_BASE", "https://graph.microsoft.com"
).rstrip("/")
MAILVAULT_M365_CLIENT_ID = env_str("MAILVAULT_M365_CLIENT_ID", "")
MAILVAULT_M365_CLIENT_SECRET = env_str("MAILVAULT_M365_CLIENT_SECRET", "")
MAILVAULT_M365_CA_BUNDLE = env_str("MAILVAULT_M365_CA_BUNDLE", "")
# Or a certificate instead of the secret: a PEM file with the certificate and its key.
MAILVAULT_M365_CLIENT_CERTIFICATE = env_str("MAILVAULT_M365_CLIENT_CERTIFICATE", "")
# Retries of one Graph request on 429/503/dropped connections before the run fails.
MAILVAULT_M365_MAX_RETRIES = env_int("MAILVAULT_M365_MAX_RETRIES", 8, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "mailvault": {"handlers": ["console"], "level": env_str("MAILVAULT_LOG_LEVEL", "INFO")},
    },
}
