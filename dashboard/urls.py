from django.urls import path

from dashboard import views

app_name = "dashboard"
urlpatterns = [
    path("", views.index, name="index"),
    path("dashboard/events/<str:key>/", views.detail, name="event"),
    path("dashboard/export.ndjson", views.export_ndjson, name="export-ndjson"),
    path("dashboard/export.csv", views.export_csv, name="export-csv"),
]
