"""The diagnostics page: what may keep a receiver from running, for the whole project."""

import gc
import types

import pytest
from django.apps import AppConfig, apps
from django.db.models.signals import post_save
from django.dispatch import Signal
from django.test import Client

from blog.models import Post
from blog.signals import post_published
from dashboard import diagnostics
from dashboard.capture.signals import discovered
from tests.helpers import settle

# A custom signal of this module (discovered as tests.test_diagnostics.parcel_shipped).
parcel_shipped = Signal()


def on_shipped(sender, **kwargs):
    pass


def twice(sender, **kwargs):
    pass


def names(rows):
    return [r["name"].rsplit(".", 1)[-1] for r in rows]


def test_the_page_is_staff_only_and_linked_from_the_dashboards_header(staff_client):
    assert Client().get("/diagnostics/").status_code == 302
    assert 'href="/diagnostics/"' in staff_client.get("/").content.decode()
    html = staff_client.get("/diagnostics/").content.decode()
    assert "<h1>Diagnostics</h1>" in html
    # The demo's receiver connected for the string "blog.Post": never the sender.
    unmatched = html.split('id="diag-unmatched"')[1].split("</section>")[0]
    assert "blog.signals.notify_subscribers" in unmatched.split("<details")[0]


def test_a_signal_module_nothing_imported_is_found(tmp_path, monkeypatch):
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "signals.py").write_text("@receiver(post_save)\ndef f(**kw): pass\n")
    module = types.ModuleType("unwired")
    module.__file__ = str(tmp_path / "__init__.py")

    class UnwiredConfig(AppConfig):
        name = "unwired"

    config = UnwiredConfig("unwired", module)
    monkeypatch.setattr(apps, "get_app_configs", lambda: [config])
    (found,) = diagnostics.unimported_modules()
    assert (found["module"], found["receivers"], found["config"]) == (
        "unwired.signals", True, "UnwiredConfig",
    )  # fmt: skip
    monkeypatch.setitem(__import__("sys").modules, "unwired.signals", types.ModuleType("x"))
    assert diagnostics.unimported_modules() == []  # imported: nothing to say


@pytest.mark.django_db(transaction=True)
def test_custom_signals_never_sent_receivers_twice_and_senders_never_matched(monkeypatch):
    from dashboard.capture import seen
    from dashboard.core.identity import ByIdentity

    monkeypatch.setattr(seen, "_sent", ByIdentity())  # as if just started
    parcel_shipped.connect(on_shipped)
    post_save.connect(twice, sender=Post, dispatch_uid="first")
    post_save.connect(twice, dispatch_uid="second")  # every sender: Post's runs it twice
    try:
        report = diagnostics.report()
        never = {r["signal"]: names(r["receivers"]) for r in report.never_sent}
        assert never["tests.test_diagnostics.parcel_shipped"] == ["on_shipped"]
        (doubled,) = [r for r in report.twice if r["name"].endswith(".twice")]
        assert (doubled["times"], doubled["uids"]) == (2, 2)
        assert "notify_subscribers" in names(report.unmatched)
        waiting = {(r["signal"].rsplit(".", 1)[-1], r["name"].rsplit(".", 1)[-1]): r["model"]
                   for r in report.waiting}  # fmt: skip
        assert waiting[("pre_save", "fill_slug")] == "blog.Post"

        parcel_shipped.send(sender=None)
        Post.objects.create(title="sent", status="published")  # pre_save, post_published
        report = diagnostics.report()
        never = [r["signal"] for r in report.never_sent]
        assert "tests.test_diagnostics.parcel_shipped" not in never
        assert ("pre_save", "fill_slug") not in {
            (r["signal"].rsplit(".", 1)[-1], r["name"].rsplit(".", 1)[-1]) for r in report.waiting
        }
        # Sent now, but never with the string it waits for.
        (still,) = [r for r in report.unmatched if r["name"].endswith("notify_subscribers")]
        assert still["sent"] is True
    finally:
        parcel_shipped.disconnect(on_shipped)
        post_save.disconnect(sender=Post, dispatch_uid="first")
        post_save.disconnect(dispatch_uid="second")
    assert not [r for r in diagnostics.report().twice if r["name"].endswith(".twice")]


def test_a_garbage_collected_receiver_seen_by_a_dispatch_is_listed(staff_client):
    def short_lived(sender, **kwargs):
        pass

    post_published.connect(short_lived)  # weak: gone once this test drops it
    del short_lived
    gc.collect()
    Post.objects.create(title="gone", status="published")
    settle()
    (gone,) = [g for g in diagnostics.report().gone if g["signal"] == "post_published"]
    assert gone["why"].startswith("garbage-collected") and gone["event"]
    html = staff_client.get("/diagnostics/").content.decode()
    assert "garbage-collected" in html.split('id="diag-gone"')[1]


def test_a_method_collected_with_its_object_is_no_finding(transactional_db):
    from dashboard.models import StoredEvent

    class Listener:
        def on_published(self, sender, **kwargs):
            pass

    listener = Listener()
    post_published.connect(listener.on_published)  # a weak method: goes with its object
    del listener
    gc.collect()
    Post.objects.create(title="method", status="published")
    settle()
    assert not [g for g in diagnostics.report().gone if g["signal"] == "post_published"]
    event = StoredEvent.objects.get(signal="post_published")
    assert [r for r in event.detail["not_run"] if r["name"] == "(gone)"] == []


def test_one_receiver_imported_under_two_module_names_is_found_connected_twice():
    """The classic: `signals` and `app.signals` both imported, each connecting its copy."""
    copy = types.FunctionType(on_shipped.__code__, {}, "on_shipped")
    copy.__module__, copy.__qualname__ = "test_diagnostics", on_shipped.__qualname__
    parcel_shipped.connect(on_shipped)
    parcel_shipped.connect(copy)  # another object: Django keeps both, and runs both
    try:
        twice = diagnostics.connected_twice(discovered())
        (doubled,) = [r for r in twice if r["name"].endswith("on_shipped")]
        assert (doubled["times"], doubled["uids"]) == (2, 0)
        assert doubled["modules"] == ["test_diagnostics", "tests.test_diagnostics"]
    finally:
        parcel_shipped.disconnect(on_shipped)
        parcel_shipped.disconnect(copy)


@pytest.mark.django_db(transaction=True)
def test_diagnostics_and_a_selection_as_a_test_need_the_permission_and_show_what_may_be_seen():
    from tests.test_permissions import client_of, user_with

    Post.objects.create(title="not for everyone")
    settle()
    assert client_of(user_with("plain-staff")).get("/diagnostics/").status_code == 403
    assert client_of(user_with("plain-staff2")).get("/export-test.py").status_code == 403
    viewer = client_of(user_with("viewer", "dashboard.view_storedevent"))
    assert viewer.get("/diagnostics/").status_code == 200
    snippet = viewer.get("/export-test.py?sender=post").content.decode()
    assert "blog.Post" not in snippet  # no blog.view_post: none of the post's events
    reader = client_of(user_with("reader", "dashboard.view_storedevent", "blog.view_post"))
    snippet = reader.get("/export-test.py?sender=post").content.decode()
    assert "('post_save', 'blog.Post')" in snippet
