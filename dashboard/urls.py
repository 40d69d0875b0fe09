"""The dashboard's pages, under whatever prefix the host includes them at.

Every route here is the dashboard's own, and never captured (capture/context.py
derives the quiet paths from this list), but SHOWN's: a login is the project's
authentication (user_logged_in, user_login_failed), wherever its form is.
"""

from django.urls import path

from dashboard import views

app_name = "dashboard"
SHOWN = frozenset({"login", "logout"})
urlpatterns = [
    path("", views.index, name="index"),
    path("events/<str:key>/", views.detail, name="event"),
    path("events/<str:key>/test.py", views.as_test, name="event-as-test"),
    path("objects/<str:label>/<str:pk>/", views.object_timeline, name="object"),
    path("diagnostics/", views.diagnostics, name="diagnostics"),
    path("export.ndjson", views.export_ndjson, name="export-ndjson"),
    path("export.csv", views.export_csv, name="export-csv"),
    path("export-test.py", views.export_test, name="export-test"),
    # The live socket's address (dashboard/asgi.py routes the websocket here).
    path("socket/", views.socket, name="socket"),
    # Where no login page of the project's is (Django's LoginView and LogoutView).
    path("login/", views.login, name="login"),
    path("logout/", views.logout, name="logout"),
]
