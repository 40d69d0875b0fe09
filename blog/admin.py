from django.contrib import admin

from blog.models import Comment, Post, Tag


class CommentInline(admin.TabularInline):
    model = Comment
    extra = 0


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = ["title", "status", "author", "created", "updated", "published_at"]
    list_filter = ["status", "tags", "created"]
    search_fields = ["title", "body"]
    filter_horizontal = ["tags"]
    date_hierarchy = "created"
    inlines = [CommentInline]
    actions = ["publish"]

    @admin.action(description="Publish the selected posts")
    def publish(self, request, queryset):  # type: ignore[no-untyped-def]
        for post in queryset:  # save() each, so post_published fires per post
            post.status = Post.Status.PUBLISHED
            post.save()

    def save_model(self, request, obj, form, change):  # type: ignore[no-untyped-def]
        if not change and obj.author_id is None:
            obj.author = request.user
        super().save_model(request, obj, form, change)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["name", "post", "created"]
    list_filter = ["created"]
    search_fields = ["name", "body", "post__title"]
