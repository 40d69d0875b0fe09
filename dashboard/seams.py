"""The private APIs the dashboard leans on, each behind one fail-safe seam.

A seam is checked once at start-up (its module's `probe`, run from
`DashboardConfig.ready()`) and may also fail later, at its first surprise.
Either way it falls back to a public path, logs one warning and reports a
system-check warning (dashboard/checks.py); it never raises into the host.
README.md ("Private APIs") lists each one: what, why, what an upgrade does.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("dashboard")


@dataclass(slots=True)
class Seam:
    id: str  # the system check's id, e.g. "dashboard.W001"
    uses: str  # the private API
    fallback: str  # what the dashboard does without it
    ok: bool = True
    reason: str = ""

    def fail(self, reason: str) -> None:
        """Use the fallback from now on; said once."""
        if not self.ok:
            return
        self.ok, self.reason = False, reason
        logger.warning("dashboard: %s: %s; from now on %s", self.uses, reason, self.fallback)

    def check(self, probe: Callable[[], str | None]) -> bool:
        """Run a start-up probe (None: as expected; else why not). Never raises."""
        try:
            reason = probe()
        except Exception as exc:
            reason = f"its check raised {type(exc).__name__}: {exc}"
        if reason:
            self.fail(reason)
        return self.ok


SEAMS: dict[str, Seam] = {}


def seam(id: str, uses: str, fallback: str) -> Seam:
    """The seam with this id, made on first use (one per private API)."""
    if id not in SEAMS:
        SEAMS[id] = Seam(id, uses, fallback)
    return SEAMS[id]
