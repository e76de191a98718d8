"""Process types, schedules, and the process log (jobs): list, detail with progress,
run now (202 with the job), cancel."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from mailvault.api.errors import Conflict, ServiceRefused
from mailvault.api.serializers import jobs as s
from mailvault.api.views.base import ERROR, ERRORS, ApiView, actor_name, service_call
from mailvault.jobs import registry, services
from mailvault.jobs.models import JobRun, Schedule
from mailvault.jobs.recurrence import Kind, Recurrence


def _process_type(name: str) -> registry.ProcessType:
    try:
        return registry.get(name)
    except registry.UnknownProcessType as exc:
        raise ServiceRefused({"process_type": [str(exc)]}) from exc


def _config(ptype: registry.ProcessType, config_id: str) -> Any:
    """The active tenant's configuration ``config_id`` of the type (another tenant's is
    "not found", like a missing one)."""
    if ptype.config_model is None:
        return None
    if not config_id:
        raise ServiceRefused({"config_id": [f"{ptype.display_name} needs a configuration id."]})
    try:
        return ptype.load_config(config_id)
    except (ObjectDoesNotExist, ValueError, TypeError) as exc:
        raise ServiceRefused({"config_id": [f"No {ptype.config_model} {config_id}."]}) from exc


def _recurrence(data: dict[str, Any]) -> Recurrence:
    return Recurrence(
        kind=Kind(data["kind"]),
        time_zone=data["time_zone"],
        run_at=data["run_at"],
        interval_minutes=data["interval_minutes"],
        minute=data["minute"],
        at_time=data["at_time"] or None,
        weekdays=frozenset(data["weekdays"]),
        day_of_month=data["day_of_month"],
    )


def queued_response(run: JobRun) -> Response:
    """202 with the queued job and its address (poll it for progress)."""
    body = s.JobSerializer(run).data
    location = reverse("api:job_detail", kwargs={"run_id": run.pk})
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


class ProcessTypeList(ApiView):
    serializer_class = s.ProcessTypeSerializer
    pagination_class = None

    @extend_schema(responses={200: s.ProcessTypeSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(
            [
                {"name": p.name, "display_name": p.display_name, "config_model": p.config_model}
                for p in registry.all_types()
            ]
        )


class ScheduleList(ApiView):
    serializer_class = s.ScheduleSerializer

    def get_queryset(self) -> QuerySet[Schedule]:
        return Schedule.objects.order_by("pk")

    @extend_schema(responses={200: s.ScheduleSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.ScheduleSerializer(page, many=True).data)

    @extend_schema(
        request=s.ScheduleCreateSerializer, responses={201: s.ScheduleSerializer, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        form = s.ScheduleCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        ptype = _process_type(data["process_type"])
        config = _config(ptype, data["config_id"])
        with service_call():
            schedule = services.save_schedule(
                ptype.name, config, _recurrence(data), now=timezone.now(), enabled=data["enabled"]
            )
        return Response(s.ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)


class ScheduleDetail(ApiView):
    serializer_class = s.ScheduleSerializer

    def _schedule(self, schedule_id: int) -> Schedule:
        return get_object_or_404(Schedule.objects, pk=schedule_id)

    @extend_schema(responses={200: s.ScheduleSerializer, **ERRORS})
    def get(self, request: Request, schedule_id: int) -> Response:
        return Response(s.ScheduleSerializer(self._schedule(schedule_id)).data)

    @extend_schema(
        request=s.ScheduleUpdateSerializer,
        responses={200: s.ScheduleSerializer, **ERRORS},
        description="Replace the recurrence (and enabled state) of the schedule.",
    )
    def put(self, request: Request, schedule_id: int) -> Response:
        schedule = self._schedule(schedule_id)
        form = s.ScheduleUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        ptype = _process_type(schedule.process_type)
        config = _config(ptype, schedule.config_id)
        with service_call():
            services.save_schedule(
                ptype.name,
                config,
                _recurrence(data),
                now=timezone.now(),
                enabled=data["enabled"],
                schedule=schedule,
            )
        return Response(s.ScheduleSerializer(self._schedule(schedule_id)).data)

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request: Request, schedule_id: int) -> Response:
        # Like Admin Access > Schedules: a schedule is a plain row; its runs stay.
        self._schedule(schedule_id).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class ScheduleRunNow(ApiView):
    serializer_class = s.JobSerializer

    @extend_schema(request=None, responses={202: s.JobSerializer, 409: ERROR, **ERRORS})
    def post(self, request: Request, schedule_id: int) -> Response:
        schedule = get_object_or_404(Schedule.objects, pk=schedule_id)
        ptype = _process_type(schedule.process_type)
        _config(ptype, schedule.config_id)
        try:
            run = services.run_schedule_now(schedule, triggered_by=actor_name(request))
        except services.AlreadyRunning as exc:
            raise Conflict({"message": str(exc), "job": exc.run.pk}) from exc
        return queued_response(run)


FILTERS = [
    OpenApiParameter("process_type", str, description="Only runs of this process type."),
    OpenApiParameter("status", str, enum=[c for c, _ in JobRun.Status.choices]),
]


class JobList(ApiView):
    serializer_class = s.JobSerializer

    def get_queryset(self) -> QuerySet[JobRun]:
        qs = services.list_runs(
            services.LogFilter(process_type=self.request.query_params.get("process_type", ""))
        )
        wanted = self.request.query_params.get("status", "")
        if wanted:
            qs = qs.filter(status=wanted)
        return qs.order_by("-created_at", "-pk")

    @extend_schema(parameters=FILTERS, responses={200: s.JobSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.JobSerializer(page, many=True).data)

    @extend_schema(
        request=s.RunNowSerializer,
        responses={202: s.JobSerializer, 409: ERROR, **ERRORS},
        description="Run a process now; answers the queued job (poll it for progress).",
    )
    def post(self, request: Request) -> Response:
        form = s.RunNowSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        ptype = _process_type(form.validated_data["process_type"])
        config = _config(ptype, form.validated_data["config_id"])
        try:
            run = services.run_now(ptype.name, config, triggered_by=actor_name(request))
        except services.AlreadyRunning as exc:
            raise Conflict({"message": str(exc), "job": exc.run.pk}) from exc
        return queued_response(run)


class JobDetail(ApiView):
    serializer_class = s.JobDetailSerializer

    @extend_schema(responses={200: s.JobDetailSerializer, **ERRORS})
    def get(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(JobRun.objects, pk=run_id)
        return Response(s.JobDetailSerializer(run).data)


class JobCancel(ApiView):
    serializer_class = s.JobSerializer

    @extend_schema(request=None, responses={200: s.JobSerializer, **ERRORS})
    def post(self, request: Request, run_id: int) -> Response:
        run = get_object_or_404(JobRun.objects, pk=run_id)
        run = services.cancel(run, by=actor_name(request))
        return Response(s.JobSerializer(run).data)
