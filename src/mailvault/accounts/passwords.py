"""The password rules of Mailvault (the rules MailStore Cloud users know).

At least 10 characters; not containing the username or the product name; no character
more than twice in a row; characters from at least 3 of 5 classes: upper case, lower
case, digits, symbols, and other (non-ASCII) letters.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from django.core.exceptions import ValidationError

MIN_LENGTH = 10
PRODUCT_NAME = "mailvault"
_REPEAT = re.compile(r"(.)\1\1", re.DOTALL)


def character_classes(password: str) -> set[str]:
    classes: set[str] = set()
    for char in password:
        if char.isascii():
            if char.isupper():
                classes.add("upper")
            elif char.islower():
                classes.add("lower")
            elif char.isdigit():
                classes.add("digit")
            else:
                classes.add("symbol")
        elif char.isupper():
            classes.add("upper")
        elif char.islower():
            classes.add("lower")
        else:
            classes.add("other")
    return classes


def password_problems(password: str, username: str = "") -> list[str]:
    problems: list[str] = []
    if len(password) < MIN_LENGTH:
        problems.append(f"The password must be at least {MIN_LENGTH} characters long.")
    lowered = password.casefold()
    local_part = username.split("@", 1)[0].casefold()
    if username and (username.casefold() in lowered or (local_part and local_part in lowered)):
        problems.append("The password must not contain the username.")
    if PRODUCT_NAME in lowered:
        problems.append("The password must not contain the product name.")
    if _REPEAT.search(password):
        problems.append("No character may appear more than twice in a row.")
    if len(character_classes(password)) < 3:
        problems.append(
            "Use at least 3 of: upper-case letters, lower-case letters, digits, symbols, "
            "other letters."
        )
    return problems


class MailvaultPasswordValidator:
    """Django password validator applying :func:`password_problems`."""

    def validate(self, password: str, user: Any = None) -> None:
        username = getattr(user, "username", "") or ""
        problems = password_problems(password, username)
        if problems:
            raise ValidationError([ValidationError(p, code="password_rule") for p in problems])

    def get_help_text(self) -> str:
        return (
            "At least 10 characters, from 3 of: upper case, lower case, digits, symbols, other "
            "letters; no character 3 times in a row; not containing your username or the "
            "product name."
        )


def generate_password(length: int = 16, username: str = "") -> str:
    """A random password that always satisfies the rules (for ``username`` too)."""
    alphabet = string.ascii_letters + string.digits + "-_.!?#%+"
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if not password_problems(candidate, username) and len(character_classes(candidate)) >= 4:
            return candidate
