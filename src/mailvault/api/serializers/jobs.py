"""Process types, schedules, job runs (the process log)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mailvault.jobs import registry
from mailvault.jobs.models import JobMessage, JobRun, Schedule, Severity
from mailvault.jobs.recurrence import Kind

SCHEDULE_KINDS = [(k.value, k.value) for k in Kind]


class ProcessTypeSerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField()
    config_model = serializers.CharField(allow_null=True)


class RecurrenceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=SCHEDULE_KINDS)
    time_zone = serializers.CharField(max_length=64, required=False, default="UTC")
    run_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    interval_minutes = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1
    )
    minute = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=0, max_value=59
    )
    at_time = serializers.CharField(
        required=False, allow_null=True, default=None, help_text="HH:MM"
    )
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        required=False,
        default=list,
        help_text="0 = Monday … 6 = Sunday.",
    )
    day_of_month = serializers.IntegerField(
        required=False, allow_null=True, default=None, min_value=1, max_value=31
    )


class ScheduleSerializer(serializers.ModelSerializer):
    description = serializers.CharField(read_only=True)
    process_type_name = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = [
            "id",
            "process_type",
            "process_type_name",
            "config_type",
            "config_id",
            "kind",
            "time_zone",
            "run_at",
            "interval_minutes",
            "minute",
            "at_time",
            "weekdays",
            "day_of_month",
            "description",
            "enabled",
            "next_run_at",
            "last_run_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_process_type_name(self, schedule: Schedule) -> str:
        return registry.display_name(schedule.process_type)


class ScheduleCreateSerializer(RecurrenceSerializer):
    process_type = serializers.CharField(max_length=100)
    config_id = serializers.CharField(
        max_length=64,
        required=False,
        default="",
        allow_blank=True,
        help_text="The id of the configuration the process runs (empty for types without one).",
    )
    enabled = serializers.BooleanField(required=False, default=True)


class ScheduleUpdateSerializer(RecurrenceSerializer):
    enabled = serializers.BooleanField(required=False, default=True)


class JobMessageSerializer(serializers.ModelSerializer):
    severity = serializers.SerializerMethodField()

    class Meta:
        model = JobMessage
        fields = ["at", "severity", "text"]
        read_only_fields = fields

    def get_severity(self, message: JobMessage) -> str:
        return str(Severity(message.severity).label).lower()


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField(allow_null=True)
    percent = serializers.IntegerField(allow_null=True)


class JobSerializer(serializers.ModelSerializer):
    process_type_name = serializers.SerializerMethodField()
    max_severity = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    schedule = serializers.IntegerField(source="schedule_id", allow_null=True, read_only=True)

    class Meta:
        model = JobRun
        fields = [
            "id",
            "request_id",
            "process_type",
            "process_type_name",
            "config_type",
            "config_id",
            "config_name",
            "schedule",
            "triggered_by",
            "status",
            "max_severity",
            "created_at",
            "started_at",
            "ended_at",
            "progress",
            "cancel_requested",
        ]
        read_only_fields = fields

    def get_process_type_name(self, run: JobRun) -> str:
        return registry.display_name(run.process_type)

    def get_max_severity(self, run: JobRun) -> str:
        return str(Severity(run.max_severity).label).lower()

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, run: JobRun) -> dict[str, Any]:
        data = {
            "done": run.progress_done,
            "total": run.progress_total,
            "percent": run.progress_percent,
        }
        return dict(ProgressSerializer(data).data)


class JobDetailSerializer(JobSerializer):
    messages = JobMessageSerializer(many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "messages"]
        read_only_fields = fields


class RunNowSerializer(serializers.Serializer):
    process_type = serializers.CharField(max_length=100)
    config_id = serializers.CharField(max_length=64, required=False, default="", allow_blank=True)
