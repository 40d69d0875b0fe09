"""The demo's URLconf and a page whose transaction saves a post, holds on and rolls back:
its rows are shown live before the rollback is known, then marked."""

import time

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path

from blog.models import Post
from config.urls import urlpatterns as demo


class Undone(Exception):
    pass


def slow_rollback(request: HttpRequest) -> HttpResponse:
    try:
        with transaction.atomic():
            Post.objects.create(title="Shown, then rolled back")
            time.sleep(0.5)  # the pump sends the rows meanwhile
            raise Undone
    except Undone:
        return HttpResponse("rolled back")


urlpatterns = [path("slow-rollback/", slow_rollback), *demo]
