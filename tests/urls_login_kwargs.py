"""A project whose login page, at Django's default LOGIN_URL, is routed with extra
keyword arguments (path(route, view, kwargs)), and the dashboard at the root."""

from django.contrib.auth.views import LoginView
from django.urls import include, path

urlpatterns = [
    path("accounts/login/", LoginView.as_view(), {"extra_context": {"site": "x"}}),
    path("", include("dashboard.urls")),
]
