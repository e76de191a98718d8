"""Users, groups with their roles, and domains of a tenant."""

from __future__ import annotations

import secrets
from typing import ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.utils import timezone

from mailvault.accounts.roles import Role
from mailvault.tenancy.models import TenantOwned, TenantScopedManager


class UserManager(TenantScopedManager["User"], BaseUserManager["User"]):
    """Scoped to the active tenant like every tenant-owned manager."""


class User(TenantOwned, AbstractBaseUser):
    """A person of a tenant. ``username`` is ``name@domain`` and unique across tenants."""

    class Source(models.TextChoices):
        LOCAL = "local", "Hand-made"
        DIRECTORY = "directory", "Synchronized"

    username = models.CharField(max_length=254, unique=True)
    display_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    is_active = models.BooleanField(default=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.LOCAL)
    must_change_password = models.BooleanField(default=False)
    is_provisioned_admin = models.BooleanField(
        default=False, help_text="The first admin created when the tenant was provisioned."
    )
    totp_secret = models.CharField(max_length=64, blank=True)
    totp_enabled = models.BooleanField(default=False)
    totp_last_step = models.BigIntegerField(default=0)
    # Rotated whenever "trust this device" cookies must stop working (password or MFA reset).
    device_trust_salt = models.CharField(max_length=32, default="", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()
    unscoped: ClassVar[BaseUserManager[User]] = BaseUserManager()  # type: ignore[assignment]

    USERNAME_FIELD = "username"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["username"]

    def __str__(self) -> str:
        return self.username

    @property
    def local_part(self) -> str:
        return self.username.split("@", 1)[0]

    @property
    def domain(self) -> str:
        return self.username.split("@", 1)[1] if "@" in self.username else ""

    @property
    def is_staff(self) -> bool:  # Django internals ask; Mailvault has no Django admin site
        return False

    @property
    def roles(self) -> frozenset[str]:
        cached: frozenset[str] | None = getattr(self, "_roles_cache", None)
        if cached is None:
            cached = frozenset(
                GroupRole.unscoped.filter(group__members=self).values_list("role", flat=True)
            )
            self._roles_cache = cached
        return cached

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def rotate_device_trust(self) -> None:
        self.device_trust_salt = secrets.token_hex(16)


class Group(TenantOwned):
    class Source(models.TextChoices):
        LOCAL = "local", "Hand-made"
        DIRECTORY = "directory", "Synchronized"

    name = models.CharField(max_length=200)
    description = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.LOCAL)
    members = models.ManyToManyField(User, related_name="user_groups", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="group_name_unique_per_tenant")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def role_set(self) -> set[str]:
        return set(self.grants.values_list("role", flat=True))


class GroupRole(TenantOwned):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="grants")
    role = models.CharField(max_length=16, choices=Role.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["group", "role"], name="group_role_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.group}: {self.role}"


class Domain(TenantOwned):
    class Kind(models.TextChoices):
        DEFAULT = "default", "Default"
        MANUAL = "manual", "Added by hand"
        SYNCHRONIZED = "synchronized", "Synchronized"

    name = models.CharField(max_length=253, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MANUAL)
    verified = models.BooleanField(default=False)
    verification_code = models.CharField(max_length=64, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def txt_record(self) -> str:
        return f"v=MAILVAULT-VERIFY; p={self.verification_code}"

    @property
    def deletable(self) -> bool:
        return self.kind == self.Kind.MANUAL

    @property
    def receives_mail(self) -> bool:
        return self.kind != self.Kind.DEFAULT


class LoginFailure(models.Model):
    """Failed sign-ins per username, for throttling. Not tenant-owned: an unknown
    username is throttled exactly like a known one, so the lockout leaks nothing."""

    username = models.CharField(max_length=254, db_index=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.username} at {self.at:%Y-%m-%d %H:%M:%S}"


from mailvault.accounts.secrets import Secret  # noqa: E402 - registers the model with the app

__all__ = ["Domain", "Group", "GroupRole", "LoginFailure", "Secret", "User"]
