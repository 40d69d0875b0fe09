from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("favicon.ico", RedirectView.as_view(url=static("dashboard/favicon.svg"))),
    path("admin/", admin.site.urls),
    path("blog/", include("blog.urls")),
    path("", include("dashboard.urls")),
]
