"""`manage.py check` for the dashboard: the private-API seams that fell back."""

from typing import Any

from django.core.checks import Warning, register

from dashboard.seams import SEAMS


@register()
def private_apis(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    return [
        Warning(
            f"The dashboard cannot use {seam.uses}: {seam.reason}.",
            hint=f"Everything else works; {seam.fallback}. A release of the dashboard "
            "for this version would bring it back.",
            id=seam.id,
        )
        for seam in SEAMS.values()
        if not seam.ok
    ]
