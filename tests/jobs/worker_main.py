"""`mailvault` with the test process types registered: used to start test workers."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailvault.settings")

import django

django.setup()

import jobs.jobtypes  # noqa: E402, F401
from mailvault.cli import main  # noqa: E402

main(sys.argv[1:])
