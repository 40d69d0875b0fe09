"""Migrate the dashboard's history database, create the demo superuser (once) and a
few sample posts (once). Run after `migrate`."""

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from blog.models import Comment, Post, Tag
from dashboard.routers import history_alias

SAMPLES = [
    (
        "Hello, signals",
        "published",
        ["django", "signals"],
        "Every save of this post sends pre_save and post_save. Watch the dashboard.",
    ),
    (
        "Receivers that do real work",
        "published",
        ["django"],
        "The blog fills empty slugs on pre_save and stamps published_at on post_published.",
    ),
    (
        "A draft in progress",
        "draft",
        ["drafts"],
        "Publish me in the admin and watch post_published fire once.",
    ),
]


class Command(BaseCommand):
    help = (
        "Create the demo superuser from DJANGO_SUPERUSER_USERNAME / DJANGO_SUPERUSER_PASSWORD "
        "(default: 'admin' with a random password, printed once) and a few sample posts."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if alias := history_alias():  # the dashboard's history, in a file of its own
            call_command("migrate", database=alias, interactive=False, verbosity=0)
        user = self.ensure_superuser()
        self.ensure_samples(user)

    def ensure_superuser(self) -> Any:
        User = get_user_model()
        username = os.environ.get("DJANGO_SUPERUSER_USERNAME") or "admin"
        existing = User.objects.filter(username=username).first()
        if existing is not None:
            self.stdout.write(
                f"Demo superuser '{username}' exists; its password is unchanged "
                f"(reset it with: python manage.py changepassword {username})."
            )
            return existing
        password = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        user = User.objects.create_superuser(username=username, email="", password=password)
        if generated:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created demo superuser  username: {username}  password: {password}\n"
                    "(shown once; set DJANGO_SUPERUSER_PASSWORD to choose it)"
                )
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Created demo superuser '{username}'."))
        return user

    @transaction.atomic
    def ensure_samples(self, author: Any) -> None:
        if Post.objects.exists():
            return
        for title, status, tags, body in SAMPLES:
            post = Post.objects.create(title=title, status=status, body=body, author=author)
            post.tags.set([Tag.objects.get_or_create(name=name)[0] for name in tags])
        Comment.objects.create(
            post=Post.objects.get(title=SAMPLES[0][0]), name="Ada", body="Nice demo!"
        )
        self.stdout.write(f"Added {len(SAMPLES)} sample posts.")
