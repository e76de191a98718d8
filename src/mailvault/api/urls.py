"""The management API's URLs: ``/api/v1/`` (tenant keys), ``/api/operator/v1/``
(operator keys), the OpenAPI document and its interactive docs (served locally)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from mailvault.api.views import (
    accounts,
    archive,
    compliance,
    foldersync,
    jobs,
    operator,
    retention,
    search,
    sources,
)

app_name = "api"


class SchemaView(SpectacularAPIView):
    permission_classes = [AllowAny]
    authentication_classes = []


class SwaggerView(SpectacularSwaggerView):
    permission_classes = [AllowAny]
    authentication_classes = []


class RedocView(SpectacularRedocView):
    permission_classes = [AllowAny]
    authentication_classes = []


urlpatterns = [
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", SwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", RedocView.as_view(url_name="api:schema"), name="redoc"),
    path("users/", accounts.UserList.as_view(), name="users"),
    path("users/<int:user_id>/", accounts.UserDetail.as_view(), name="user_detail"),
    path(
        "users/<int:user_id>/reset-password/",
        accounts.UserResetPassword.as_view(),
        name="user_reset_password",
    ),
    path("users/<int:user_id>/reset-mfa/", accounts.UserResetMfa.as_view(), name="user_reset_mfa"),
    path("groups/", accounts.GroupList.as_view(), name="groups"),
    path("groups/<int:group_id>/", accounts.GroupDetail.as_view(), name="group_detail"),
    path("roles/", accounts.RoleList.as_view(), name="roles"),
    path("domains/", accounts.DomainList.as_view(), name="domains"),
    path("domains/<int:domain_id>/", accounts.DomainDetail.as_view(), name="domain_detail"),
    path("domains/<int:domain_id>/verify/", accounts.DomainVerify.as_view(), name="domain_verify"),
    path("mailboxes/", archive.MailboxList.as_view(), name="mailboxes"),
    path("mailboxes/<int:mailbox_id>/", archive.MailboxDetail.as_view(), name="mailbox_detail"),
    path("journal-endpoints/", archive.JournalEndpointList.as_view(), name="journal_endpoints"),
    path(
        "journal-endpoints/<int:endpoint_id>/",
        archive.JournalEndpointDetail.as_view(),
        name="journal_endpoint_detail",
    ),
    path("directory-services/", sources.DirectoryServiceList.as_view(), name="directory_services"),
    path(
        "directory-services/<int:service_id>/",
        sources.DirectoryServiceDetail.as_view(),
        name="directory_service_detail",
    ),
    path(
        "directory-services/<int:service_id>/synchronize/",
        sources.DirectoryServiceSync.as_view(),
        name="directory_service_sync",
    ),
    path("archiving-profiles/", sources.ArchivingProfileList.as_view(), name="archiving_profiles"),
    path(
        "archiving-profiles/<int:profile_id>/",
        sources.ArchivingProfileDetail.as_view(),
        name="archiving_profile_detail",
    ),
    path(
        "archiving-profiles/<int:profile_id>/run/",
        sources.ArchivingProfileRun.as_view(),
        name="archiving_profile_run",
    ),
    path("folder-synchronizations/", foldersync.FolderSyncList.as_view(), name="folder_syncs"),
    path(
        "folder-synchronizations/<int:sync_id>/",
        foldersync.FolderSyncDetail.as_view(),
        name="folder_sync_detail",
    ),
    path(
        "folder-synchronizations/<int:sync_id>/run/",
        foldersync.FolderSyncRun.as_view(),
        name="folder_sync_run",
    ),
    path("process-types/", jobs.ProcessTypeList.as_view(), name="process_types"),
    path("schedules/", jobs.ScheduleList.as_view(), name="schedules"),
    path("schedules/<int:schedule_id>/", jobs.ScheduleDetail.as_view(), name="schedule_detail"),
    path("schedules/<int:schedule_id>/run/", jobs.ScheduleRunNow.as_view(), name="schedule_run"),
    path("jobs/", jobs.JobList.as_view(), name="jobs"),
    path("jobs/<int:run_id>/", jobs.JobDetail.as_view(), name="job_detail"),
    path("jobs/<int:run_id>/cancel/", jobs.JobCancel.as_view(), name="job_cancel"),
    path("search/", search.Search.as_view(), name="search"),
    path("secrets/", compliance.SecretList.as_view(), name="secrets"),
    path("secrets/<int:secret_id>/", compliance.SecretDetail.as_view(), name="secret_detail"),
    path("retention-policies/", retention.RetentionPolicyList.as_view(), name="retention_policies"),
    path(
        "retention-policies/<int:policy_id>/",
        retention.RetentionPolicyDetail.as_view(),
        name="retention_policy_detail",
    ),
    path("legal-holds/", retention.LegalHoldList.as_view(), name="legal_holds"),
    path(
        "legal-holds/<int:hold_id>/", retention.LegalHoldDetail.as_view(), name="legal_hold_detail"
    ),
    path(
        "legal-holds/<int:hold_id>/release/",
        retention.LegalHoldRelease.as_view(),
        name="legal_hold_release",
    ),
    path("exports/", retention.ExportList.as_view(), name="exports"),
    path("exports/<int:export_id>/", retention.ExportDetail.as_view(), name="export_detail"),
    path(
        "exports/<int:export_id>/download/",
        retention.ExportDownload.as_view(),
        name="export_download",
    ),
    path("audit-log/", compliance.AuditLog.as_view(), name="audit_log"),
    path("audit-log/validation/", compliance.AuditValidation.as_view(), name="audit_validation"),
]

operator_patterns = [
    path("tenants/", operator.TenantList.as_view(), name="tenants"),
    path("tenants/<int:tenant_id>/", operator.TenantDetail.as_view(), name="tenant_detail"),
    path(
        "tenants/<int:tenant_id>/suspend/", operator.TenantSuspend.as_view(), name="tenant_suspend"
    ),
    path("tenants/<int:tenant_id>/resume/", operator.TenantResume.as_view(), name="tenant_resume"),
    path("tenants/<int:tenant_id>/quotas/", operator.TenantQuotas.as_view(), name="tenant_quotas"),
    path("tenants/<int:tenant_id>/usage/", operator.TenantUsage.as_view(), name="tenant_usage"),
]
