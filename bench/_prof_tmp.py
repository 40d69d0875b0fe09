import cProfile, pstats, os, time
import django; django.setup()
from django.db import transaction
from blog.models import Post
from bench import saves
from dashboard.live.handoff import handoff
saves.set_receivers(True)
with saves.capture_only():
    with transaction.atomic():
        for i in range(200): Post.objects.create(title=f"w {i}")
    pr = cProfile.Profile(); pr.enable()
    with transaction.atomic():
        for i in range(2000): Post.objects.create(title=f"p {i}")
    pr.disable()
st = pstats.Stats(pr); st.sort_stats("cumtime").print_stats("dashboard", 30)
