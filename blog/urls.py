from django.urls import path

from blog import views

app_name = "blog"
urlpatterns = [
    path("", views.post_list, name="list"),
    path("error/", views.fail, name="error"),
    path("<slug:slug>/", views.post_detail, name="detail"),
]
