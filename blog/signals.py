"""The blog's own signals, and its receivers, the way Django's docs teach them.

Imported in BlogConfig.ready() so the @receiver decorators connect. Django
sends m2m_changed, and pre/post_delete for a fast-deletable queryset, only
when some receiver listens (and the dashboard connects none), so the blog's
own receivers below are what makes those fire in the demo, as in any project.
"""

from typing import Any

from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save
from django.dispatch import Signal, receiver
from django.utils import timezone
from django.utils.text import slugify

from blog.models import Comment, Post

# Sent once when a post becomes published (not on later saves of a published post).
# Arguments: post (the Post instance, already saved).
post_published = Signal()

# Sent by the post detail view each time a post is shown.
# Arguments: post (the Post shown), request (the HttpRequest).
post_viewed = Signal()


@receiver(pre_save, sender=Post)
def fill_slug(sender: type[Post], instance: Post, **kwargs: Any) -> None:
    """Give a post without a slug one made from its title, unique among posts."""
    if instance.slug:
        return
    base = slugify(instance.title)[:180] or "post"
    slug, n = base, 1
    while Post.objects.filter(slug=slug).exclude(pk=instance.pk).exists():
        n += 1
        slug = f"{base}-{n}"
    instance.slug = slug


@receiver(post_published)
def stamp_publication(sender: type[Post], post: Post, **kwargs: Any) -> None:
    """Record when the post was published (an update(): no further save signals)."""
    post.published_at = timezone.now()
    Post.objects.filter(pk=post.pk).update(published_at=post.published_at)


# A mistake kept on purpose, the kind the dashboard explains: `sender="blog.Post"` is
# resolved to the model only by model signals (pre_save, post_save, ...). For a plain
# Signal it is the string itself, and post_published is sent with sender=Post: this
# never runs. Each post_published's detail lists it under "did not run" (connected for
# another sender); the diagnostics page lists it too. (Fixed: `sender=Post`.)
@receiver(post_published, sender="blog.Post")
def notify_subscribers(sender: type[Post], post: Post, **kwargs: Any) -> None:
    """Tell the post's readers it is out (never called: see above)."""
    cache.set(f"post:{post.pk}:notified", True)


@receiver(post_save, sender=Comment)
def bump_post_on_comment(sender: type[Comment], instance: Comment, created: bool,
                         raw: bool = False, **kwargs: Any) -> None:  # fmt: skip
    """A new comment bumps its post's `updated` (feeds sort by it): a save of another
    model from a receiver, so the post's pre_save and post_save are caused by it."""
    if created and not raw:
        instance.post.save(update_fields=["updated"])


@receiver(m2m_changed, sender=Post.tags.through)
def touch_on_tag_change(
    sender: type, instance: object, action: str, reverse: bool, **kwargs: Any
) -> None:
    """A post whose tags changed counts as updated (feeds sort by it)."""
    if action in ("post_add", "post_remove", "post_clear") and not reverse:
        Post.objects.filter(pk=instance.pk).update(updated=timezone.now())  # type: ignore[attr-defined]


@receiver(post_delete, sender=Post)
def forget_deleted_post(sender: type[Post], instance: Post, **kwargs: Any) -> None:
    """A deleted post's cached page goes with it."""
    cache.delete(f"post:{instance.slug}")
