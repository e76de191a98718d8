"""TOTP (RFC 6238) second factor, QR enrolment, and "trust this device for 14 days"."""

from __future__ import annotations

import io
import time

import pyotp
import qrcode
import qrcode.image.svg
from django.conf import settings
from django.core import signing

from mailvault.accounts.models import User

ISSUER = "Mailvault"
_TRUST_SALT = "mailvault.mfa.trusted-device"


def trust_cookie_name(user: User) -> str:
    return f"mv_trust_{user.pk}"


def start_enrolment(user: User) -> str:
    """A fresh secret, kept on the user but not enabled until a code confirms it."""
    user.totp_secret = pyotp.random_base32()
    user.totp_enabled = False
    user.save(update_fields=["totp_secret", "totp_enabled"])
    return user.totp_secret


def provisioning_uri(user: User) -> str:
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    image = qrcode.make(uri, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()


def verify_code(user: User, code: str, *, at: float | None = None) -> bool:
    """Check a code (one step of clock drift allowed); a code is accepted once only."""
    code = "".join(code.split())
    if not user.totp_secret or not code.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    now = time.time() if at is None else at
    current_step = int(now // totp.interval)
    for step in (current_step - 1, current_step, current_step + 1):
        if step <= user.totp_last_step:
            continue
        if pyotp.utils.strings_equal(totp.generate_otp(step), code):
            user.totp_last_step = step
            user.save(update_fields=["totp_last_step"])
            return True
    return False


def confirm_enrolment(user: User, code: str) -> bool:
    if verify_code(user, code):
        user.totp_enabled = True
        user.save(update_fields=["totp_enabled"])
        return True
    return False


def make_trust_token(user: User) -> str:
    return signing.dumps({"u": user.pk, "s": user.device_trust_salt}, salt=_TRUST_SALT)


def is_trusted(user: User, token: str | None) -> bool:
    if not token:
        return False
    try:
        data = signing.loads(token, salt=_TRUST_SALT, max_age=settings.MFA_TRUST_DAYS * 86400)
    except signing.BadSignature:
        return False
    return bool(data.get("u") == user.pk and data.get("s") == user.device_trust_salt)
