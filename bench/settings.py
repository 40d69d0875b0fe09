"""Settings for the benchmark's daphne: the project's, plus what-if knobs from the environment.

Used only when `python -m bench --window SECONDS` asks for a different
DASHBOARD["BATCH_WINDOW"]; the default run serves config.settings unchanged.
"""

import os

from config.settings import *  # noqa: F403
from config.settings import DASHBOARD

if window := os.environ.get("BENCH_BATCH_WINDOW"):
    DASHBOARD = {**DASHBOARD, "BATCH_WINDOW": float(window)}
