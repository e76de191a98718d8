"""Corpus fixtures for the file readers: archives unpacked into a session temp dir."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from corpus import TAR_FILTER

from .smtp_servers import Installation, Smtpd, build_installation

ROOT = Path(__file__).resolve().parents[2]


def corpus_file(name: str) -> Path:
    """The corpus archive, or a skip (a failure under CI=true, where it must exist)."""
    base = Path(os.environ.get("MAILVAULT_CORPUS", ROOT.parent / "shared" / "corpus"))
    path = base / name
    if not path.is_file():
        reason = f"corpus file {path} is absent (set MAILVAULT_CORPUS)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def _extract(archive: Path, dest: Path, members: list[str] | None = None) -> Path:
    if members is None:
        with tarfile.open(archive) as tar:
            tar.extractall(dest, **TAR_FILTER)
        return dest
    wanted = set(members)
    with tarfile.open(archive, "r|xz") as tar:  # streamed: stop once the members are out
        for member in tar:
            if member.name in wanted:
                tar.extract(member, dest, **TAR_FILTER)
                wanted.discard(member.name)
                if not wanted:
                    break
    assert not wanted, f"missing from {archive}: {wanted}"
    return dest


@pytest.fixture(scope="session")
def outlook_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _extract(corpus_file("outlook.tar.xz"), tmp_path_factory.mktemp("outlook"))


@pytest.fixture(scope="session")
def tricky_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _extract(corpus_file("tricky-mime.tar.xz"), tmp_path_factory.mktemp("tricky"))


@pytest.fixture(scope="session")
def rhelp_month(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two real months of R-help near the start of the archive (2003-May is ~1,600 msgs)."""
    dest = tmp_path_factory.mktemp("rhelp")
    _extract(
        corpus_file("r-help-mbox.tar.xz"), dest, ["r-help/2020-July.txt", "r-help/2003-May.txt"]
    )
    return dest / "r-help"


# --- end-to-end journaling: a private installation, copied per test -----------------


@pytest.fixture(scope="session")
def mv_template(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """Migrated, with tenant contoso, its mailboxes and two journal endpoints."""
    return build_installation(tmp_path_factory.mktemp("mv-template") / "var")


@pytest.fixture
def installation(mv_template: Installation, tmp_path: Path) -> Installation:
    return mv_template.copy(tmp_path / "var")


@pytest.fixture
def smtpd(installation: Installation) -> Iterator[Smtpd]:
    """``mailvault smtpd`` (listener and consumer) as a real subprocess."""
    process = Smtpd(installation).start()
    yield process
    process.stop()
