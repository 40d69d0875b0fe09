from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard import conf
from dashboard.watched import FAMILIES, WATCHED, receivers_of


@staff_member_required
def index(request: HttpRequest) -> HttpResponse:
    families = [
        (
            family,
            [
                {"name": w.name, "receivers": receivers_of(w.name)}
                for w in WATCHED
                if w.family == family
            ],
        )
        for family in FAMILIES
    ]
    return render(
        request,
        "dashboard/index.html",
        {"families": families, "max_rows": conf.get("MAX_ROWS")},
    )
