"""Test configuration.

Property tests (hypothesis) run a fixed, derandomized example set by default, so
that the suite checks the same examples on every run and on every machine. Random
exploration is an opt-in profile: ``HYPOTHESIS_PROFILE=explore python -m pytest``.
"""

import os

from hypothesis import settings

settings.register_profile("default", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
