import os

from django.core.asgi import get_asgi_application

from dashboard.asgi import wrap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hostsite.settings")

application = wrap(get_asgi_application())
