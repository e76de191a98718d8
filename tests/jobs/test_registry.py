"""The process-type registry imports the apps' job modules on the first lookup.

The apps name those modules with ``registry.provided_by`` in ``ready()``: a command that
never looks a type up (``mailvault import``) starts without the connectors they import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mailvault.jobs import registry

PROBE = textwrap.dedent(
    """
    import json, sys
    import django
    django.setup()
    from mailvault.jobs import registry
    heavy = ("msal", "mailvault.sources.graph.client", "mailvault.directory.sync")
    before = [m for m in heavy if m in sys.modules]
    names = [p.name for p in registry.all_types()]
    after = [m for m in heavy if m in sys.modules]
    print(json.dumps({"before": before, "after": after, "names": names}))
    """
)


def test_job_modules_load_on_the_first_lookup_not_at_start() -> None:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mailvault.settings"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == []  # django.setup() imported none of them
    assert seen["after"] == ["msal", "mailvault.sources.graph.client", "mailvault.directory.sync"]
    assert {"ingestion.file_import", "directory.sync"} <= set(seen["names"])


def test_a_provider_that_fails_to_import_fails_every_lookup_loudly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pending = list(registry._PROVIDERS)  # what this process has not imported yet, if any
    monkeypatch.setattr(registry, "_PROVIDERS", ["mailvault.no_such_module", *pending])
    for _ in range(2):  # not forgotten after the first failure
        with pytest.raises(ModuleNotFoundError, match="no_such_module"):
            registry.get("directory.sync")
    registry._PROVIDERS.remove("mailvault.no_such_module")
    assert registry.get("directory.sync").name == "directory.sync"
    assert registry._PROVIDERS == []


SLOW_PROVIDER = """
import time
from mailvault.jobs.registry import process_type
time.sleep(0.3)

@process_type("test.slow_provider", "Slow provider")
def work(ctx):
    pass
"""


def test_a_lookup_waits_for_a_provider_another_thread_is_importing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "slow_provider_module.py").write_text(SLOW_PROVIDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.all_types()  # every real provider imported: this one is the only one left
    monkeypatch.setattr(registry, "_PROVIDERS", ["slow_provider_module"])
    try:
        first = threading.Thread(target=registry.all_types)
        first.start()
        time.sleep(0.1)  # the first lookup is importing it now
        assert registry.get("test.slow_provider").display_name == "Slow provider"
        first.join()
    finally:
        registry.unregister("test.slow_provider")
        sys.modules.pop("slow_provider_module", None)
