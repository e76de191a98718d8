"""The password rules of features.md, each one on its own, and the generator."""

from __future__ import annotations

import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from hypothesis import given, settings
from hypothesis import strategies as st

from mailvault.accounts.passwords import (
    MIN_LENGTH,
    MailvaultPasswordValidator,
    character_classes,
    generate_password,
    password_problems,
)

GOOD = "Tr4vel-Light"  # 12 characters, four classes, no triple, no names


def _only(problem_fragment: str, password: str, username: str = "") -> None:
    problems = password_problems(password, username)
    assert len(problems) == 1, problems
    assert problem_fragment in problems[0]


def test_good_password_has_no_problems() -> None:
    assert password_problems(GOOD, "jane@acme") == []


def test_length() -> None:
    assert MIN_LENGTH == 10
    _only("at least 10", "Ab1-Cd2-e")  # 9 characters
    assert password_problems("Ab1-Cd2-ef") == []  # exactly 10


@pytest.mark.parametrize(
    ("password", "username"),
    [
        ("Xjane@acmeX1", "jane@acme"),  # the whole username
        ("Q1!JANEwalks", "jane@acme"),  # the local part, any case
        ("Walks-jAnE-9", "Jane@Acme"),
    ],
)
def test_username_refused(password: str, username: str) -> None:
    _only("username", password, username)


def test_other_users_name_is_fine() -> None:
    assert password_problems("Q1!JANEwalks", "john@acme") == []


@pytest.mark.parametrize("password", ["Mailvault-42", "my-MAILVAULT-7", "x1MaIlVaUlTx"])
def test_product_name_refused(password: str) -> None:
    _only("product name", password)


@pytest.mark.parametrize(
    "password", ["Paaas-word-1", "Pass-word-111", "Pass---word1", "ÄÄÄb-word-1"]
)
def test_three_in_a_row_refused(password: str) -> None:
    _only("more than twice", password)


def test_two_in_a_row_allowed() -> None:
    assert password_problems("Paass--word11") == []


@pytest.mark.parametrize(
    ("password", "classes"),
    [
        ("abcdefghij", {"lower"}),
        ("abcdefGHIJ", {"lower", "upper"}),
        ("abcdef1234", {"lower", "digit"}),
        ("1234-56789", {"digit", "symbol"}),
        # Non-ASCII letters with a case count as upper/lower case letters …
        ("äöüéèàçñßø", {"lower"}),
        ("ÄÖÜÉabcdef", {"upper", "lower"}),
        # … caseless letters (CJK) are the fifth class, "other letters".
        ("漢字かなカナ한국어語", {"other"}),
    ],
)
def test_fewer_than_three_classes_refused(password: str, classes: set[str]) -> None:
    assert character_classes(password) == classes
    _only("at least 3 of", password)


@pytest.mark.parametrize(
    ("password", "classes"),
    [
        ("abcdefGH12", {"lower", "upper", "digit"}),
        ("abcdef-.12", {"lower", "symbol", "digit"}),
        ("ÄÖÜÉäöüé12", {"upper", "lower", "digit"}),  # all letters non-ASCII
        ("漢字かなabcd12", {"other", "lower", "digit"}),
        ("漢字かな-!?#%1", {"other", "symbol", "digit"}),
        ("漢字かなカナ-ABC", {"other", "symbol", "upper"}),
    ],
)
def test_three_classes_accepted(password: str, classes: set[str]) -> None:
    assert character_classes(password) == classes
    assert password_problems(password) == []


def test_several_problems_reported_together() -> None:
    problems = password_problems("mailvault", "")
    assert len(problems) == 3  # too short, product name, one class only


def test_validator_is_installed_for_django() -> None:
    with pytest.raises(ValidationError) as excinfo:
        validate_password("short")
    assert {e.code for e in excinfo.value.error_list} == {"password_rule"}
    validate_password(GOOD)
    assert "10 characters" in MailvaultPasswordValidator().get_help_text()


@settings(max_examples=100, deadline=None)
@given(length=st.integers(min_value=MIN_LENGTH, max_value=64))
def test_generated_passwords_are_always_valid(length: int) -> None:
    password = generate_password(length)
    assert len(password) == length
    assert password_problems(password) == []
    assert len(character_classes(password)) >= 4


@settings(max_examples=50, deadline=None)
@given(username=st.from_regex(r"\A[a-z]{1,8}@[a-z]{2,8}\Z"))
def test_generated_password_valid_for_any_user(username: str) -> None:
    # The username rule only bites by accident; the default length keeps it vanishing.
    password = generate_password()
    problems = password_problems(password, username)
    assert problems == [] or problems == ["The password must not contain the username."]


def test_generated_passwords_differ() -> None:
    assert len({generate_password() for _ in range(50)}) == 50


def test_generated_passwords_never_contain_a_short_username() -> None:
    from mailvault.accounts.passwords import generate_password, password_problems

    for _ in range(200):  # with "x" as the user, most random passwords would contain it
        assert password_problems(generate_password(username="x@example.com"), "x@example.com") == []
