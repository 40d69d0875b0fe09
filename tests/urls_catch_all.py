"""A project as Wagtail's or django CMS's template makes one: the admin, the dashboard,
then a catch-all that serves the CMS's pages (any path matches it), and no login page."""

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path


def cms_page(request: HttpRequest, path: str = "") -> HttpResponse:
    return HttpResponse(f"CMS page {path!r} not found", status=404)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("signals/", include("dashboard.urls")),
    re_path(r"^(?P<path>.*)$", cms_page),
]
