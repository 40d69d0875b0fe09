"""The demo's URLconf, with the dashboard mounted under another prefix."""

from django.urls import include, path

from config.urls import urlpatterns as demo

urlpatterns = [
    *[p for p in demo if getattr(p, "app_name", None) != "dashboard"],
    path("tools/signals/", include("dashboard.urls")),
]
