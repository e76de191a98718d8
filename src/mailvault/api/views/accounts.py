"""Users, groups, roles, domains: the Admin Access > Users and Groups pages as JSON."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from mailvault.accounts import services
from mailvault.accounts.models import Domain, Group, User
from mailvault.api.serializers import accounts as s
from mailvault.api.views.base import ERRORS, ApiView, service_call


class UserList(ApiView):
    serializer_class = s.UserSerializer

    def get_queryset(self) -> QuerySet[User]:
        return User.objects.prefetch_related("user_groups").order_by("username")

    @extend_schema(responses={200: s.UserSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.UserSerializer(page, many=True).data)

    @extend_schema(
        request=s.UserCreateSerializer, responses={201: s.UserCreatedSerializer, **ERRORS}
    )
    def post(self, request: Request) -> Response:
        form = s.UserCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        with service_call():
            user, password = services.create_user(
                data["local_part"],
                data["domain"],
                display_name=data["display_name"],
                password=data["password"],
                groups=data["groups"],
                must_change_password=data["must_change_password"],
            )
        body = dict(s.UserSerializer(user).data)
        body["initial_password"] = password
        return Response(body, status=status.HTTP_201_CREATED)


class UserDetail(ApiView):
    serializer_class = s.UserSerializer

    def _user(self, user_id: int) -> User:
        return get_object_or_404(User.objects, pk=user_id)

    @extend_schema(responses={200: s.UserSerializer, **ERRORS})
    def get(self, request: Request, user_id: int) -> Response:
        return Response(s.UserSerializer(self._user(user_id)).data)

    @extend_schema(request=s.UserUpdateSerializer, responses={200: s.UserSerializer, **ERRORS})
    def patch(self, request: Request, user_id: int) -> Response:
        user = self._user(user_id)
        form = s.UserUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        with service_call():
            services.update_user(
                user,
                display_name=data.get("display_name", user.display_name),
                is_active=data.get("is_active", user.is_active),
                groups=data.get("groups", list(user.user_groups.all())),
            )
        return Response(s.UserSerializer(self._user(user_id)).data)

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request: Request, user_id: int) -> Response:
        with service_call():
            services.delete_user(self._user(user_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserResetPassword(ApiView):
    serializer_class = s.PasswordSerializer

    @extend_schema(request=None, responses={200: s.PasswordSerializer, **ERRORS})
    def post(self, request: Request, user_id: int) -> Response:
        user = get_object_or_404(User.objects, pk=user_id)
        with service_call():
            password = services.reset_password(user)
        return Response({"password": password})


class UserResetMfa(ApiView):
    serializer_class = s.UserSerializer

    @extend_schema(request=None, responses={200: s.UserSerializer, **ERRORS})
    def post(self, request: Request, user_id: int) -> Response:
        user = get_object_or_404(User.objects, pk=user_id)
        services.reset_mfa(user)
        return Response(s.UserSerializer(user).data)


class GroupList(ApiView):
    serializer_class = s.GroupSerializer

    def get_queryset(self) -> QuerySet[Group]:
        return Group.objects.prefetch_related("members", "grants").order_by("name")

    @extend_schema(responses={200: s.GroupSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.GroupSerializer(page, many=True).data)

    @extend_schema(request=s.GroupWriteSerializer, responses={201: s.GroupSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        form = s.GroupWriteSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        with service_call():
            group = services.create_group(
                data["name"], description=data["description"], members=data["members"]
            )
            if data["roles"]:
                services.set_group_roles(group, data["roles"])
        return Response(s.GroupSerializer(group).data, status=status.HTTP_201_CREATED)


class GroupDetail(ApiView):
    serializer_class = s.GroupSerializer

    def _group(self, group_id: int) -> Group:
        return get_object_or_404(Group.objects, pk=group_id)

    @extend_schema(responses={200: s.GroupSerializer, **ERRORS})
    def get(self, request: Request, group_id: int) -> Response:
        return Response(s.GroupSerializer(self._group(group_id)).data)

    @extend_schema(request=s.GroupUpdateSerializer, responses={200: s.GroupSerializer, **ERRORS})
    def patch(self, request: Request, group_id: int) -> Response:
        group = self._group(group_id)
        form = s.GroupUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data: dict[str, Any] = form.validated_data
        with service_call():
            if {"name", "description", "members"} & set(data):
                services.update_group(
                    group,
                    name=data.get("name", group.name),
                    description=data.get("description", group.description),
                    members=data.get("members", list(group.members.all())),
                )
            if "roles" in data:
                services.set_group_roles(group, data["roles"])
        return Response(s.GroupSerializer(self._group(group_id)).data)

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request: Request, group_id: int) -> Response:
        with service_call():
            services.delete_group(self._group(group_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RoleList(ApiView):
    serializer_class = s.RoleSerializer
    pagination_class = None

    @extend_schema(responses={200: s.RoleSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        return Response(s.RoleSerializer.all_roles())


class DomainList(ApiView):
    serializer_class = s.DomainSerializer

    def get_queryset(self) -> QuerySet[Domain]:
        return Domain.objects.order_by("name")

    @extend_schema(responses={200: s.DomainSerializer(many=True), **ERRORS})
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.DomainSerializer(page, many=True).data)

    @extend_schema(request=s.DomainCreateSerializer, responses={201: s.DomainSerializer, **ERRORS})
    def post(self, request: Request) -> Response:
        form = s.DomainCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        with service_call():
            domain = services.add_domain(form.validated_data["name"])
        return Response(s.DomainSerializer(domain).data, status=status.HTTP_201_CREATED)


class DomainDetail(ApiView):
    serializer_class = s.DomainSerializer

    @extend_schema(responses={200: s.DomainSerializer, **ERRORS})
    def get(self, request: Request, domain_id: int) -> Response:
        return Response(s.DomainSerializer(get_object_or_404(Domain.objects, pk=domain_id)).data)

    @extend_schema(responses={204: None, **ERRORS})
    def delete(self, request: Request, domain_id: int) -> Response:
        with service_call():
            services.delete_domain(get_object_or_404(Domain.objects, pk=domain_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DomainVerify(ApiView):
    serializer_class = s.DomainSerializer

    @extend_schema(request=None, responses={200: s.DomainSerializer, **ERRORS})
    def post(self, request: Request, domain_id: int) -> Response:
        """Look up the TXT record now; the answer says whether the domain is verified."""
        domain = get_object_or_404(Domain.objects, pk=domain_id)
        with service_call():
            services.verify_domain(domain)
        return Response(s.DomainSerializer(domain).data)
