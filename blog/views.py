from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from blog.models import Comment, Post
from blog.signals import post_viewed


def post_list(request: HttpRequest) -> HttpResponse:
    posts = Post.objects.filter(status=Post.Status.PUBLISHED).prefetch_related("tags")
    return render(request, "blog/post_list.html", {"posts": posts})


def _published(slug: str) -> Post:
    return get_object_or_404(
        Post.objects.prefetch_related("tags", "comments"),
        slug=slug,
        status=Post.Status.PUBLISHED,
    )


def post_detail(request: HttpRequest, slug: str) -> HttpResponse:
    post = _published(slug)
    post_viewed.send(sender=Post, post=post, request=request)
    return render(request, "blog/post_detail.html", {"post": post})


@require_POST
def comment(request: HttpRequest, slug: str) -> HttpResponse:
    """A reader's comment: a Comment saved (pre_save, post_save), then back to the post."""
    post = _published(slug)
    name = request.POST.get("name", "").strip()[:80] or "anonymous"
    body = request.POST.get("body", "").strip()
    if body:
        Comment.objects.create(post=post, name=name, body=body)
    return redirect(post)


def fail(request: HttpRequest) -> HttpResponse:
    """A page that fails on purpose, to show got_request_exception."""
    raise RuntimeError("This page fails on purpose (demo of got_request_exception).")
