from django.urls import path

from blog import playground, views

app_name = "blog"
urlpatterns = [
    path("", views.post_list, name="list"),
    path("error/", views.fail, name="error"),
    path("playground/", playground.page, name="playground"),
    path("playground/<slug:key>/", playground.run, name="playground-run"),
    path("<slug:slug>/", views.post_detail, name="detail"),
    path("<slug:slug>/comment/", views.comment, name="comment"),
]
