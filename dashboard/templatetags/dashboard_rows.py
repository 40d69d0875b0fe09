"""`{{ rows|event_rows }}`: the history table renders its rows as live frames do."""

from typing import Any

from django import template
from django.utils.safestring import SafeString

from dashboard.render import render_rows

register = template.Library()


@register.filter
def event_rows(rows: list[dict[str, Any]]) -> SafeString:
    return render_rows(rows)
