from catalog import views
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("signals/", include("dashboard.urls")),  # the dashboard: any prefix
    path("borrow/<str:title>/", views.borrow),
]
