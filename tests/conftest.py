"""Hypothesis settings profiles, registered once for the whole test suite.

``ci`` (chosen when the environment variable CI is set, as in .ci/run) is derandomized, so a CI
run is reproducible and a red run points at a real bug, not at an unlucky draw; ``dev`` (the
default elsewhere) draws fresh examples on every run to keep exploring. Either can be forced
with ``HYPOTHESIS_PROFILE``. Test modules' own ``settings(...)`` inherit from the loaded profile.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("dev", print_blob=True)
settings.register_profile("ci", derandomize=True, print_blob=True)
DEFAULT_PROFILE = "ci" if os.environ.get("CI") else "dev"
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or DEFAULT_PROFILE)
