from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from blog.models import Post
from blog.signals import post_viewed


def post_list(request: HttpRequest) -> HttpResponse:
    posts = Post.objects.filter(status=Post.Status.PUBLISHED).prefetch_related("tags")
    return render(request, "blog/post_list.html", {"posts": posts})


def post_detail(request: HttpRequest, slug: str) -> HttpResponse:
    post = get_object_or_404(
        Post.objects.prefetch_related("tags", "comments"),
        slug=slug,
        status=Post.Status.PUBLISHED,
    )
    post_viewed.send(sender=Post, post=post, request=request)
    return render(request, "blog/post_detail.html", {"post": post})


def fail(request: HttpRequest) -> HttpResponse:
    """A page that fails on purpose, to show got_request_exception."""
    raise RuntimeError("This page fails on purpose (demo of got_request_exception).")
