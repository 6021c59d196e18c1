"""Test configuration.

Under CI (``CI`` set) hypothesis runs derandomized, without an example database:
the property suite then checks the same examples on every run, so a CI result is
reproducible. Locally it explores new random examples on every run.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
