"""`{{ rows|event_rows }}`: the history table renders its rows as live frames do."""

from django import template
from django.utils.safestring import SafeString

from dashboard.core.render import render_rows
from dashboard.core.rows import Row

register = template.Library()


@register.filter
def event_rows(rows: list[Row]) -> SafeString:
    return render_rows(rows)
