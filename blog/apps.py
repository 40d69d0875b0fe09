from django.apps import AppConfig


class BlogConfig(AppConfig):
    name = "blog"
    verbose_name = "Demo blog"

    def ready(self) -> None:
        from blog import signals  # noqa: F401  (connects the @receiver functions)
