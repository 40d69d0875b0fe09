"""Who a receiver was connected for, from the key Django's dispatcher files it under,
and why it did not run for a signal sent for another sender.

`Signal.connect(receiver, sender=X)` keeps only `id(X)`, and the receiver runs only when
the signal is sent with that very object. Most misses are as intended (a receiver for
Comment does not run for a Post's save) and are folded away. Some are the classic
mistakes, and each is said plainly: a proxy's save does not run a receiver connected for
its model; `m2m_changed` is sent with the relation's `through` model, not the model with
the field; a model swapped by a setting (`auth.User` under a custom `AUTH_USER_MODEL`) is
never sent for, nor is an abstract model; and a plain Signal never resolves the string
"app.Model" (model signals do).
"""

from typing import Any

from django.apps import apps
from django.db.models import Model

# The reason when nothing more is known (and all that events stored before 2026-11-27 say).
ANOTHER_SENDER = "connected for another sender"
MAX_SENDERS = 1000  # senders noted per signal (capture/seen.py); past it, "never" is unknown

_by_key: tuple[Any, dict[int, type[Model]]] | None = None


def model_for(key: int) -> type[Model] | None:
    """The model Django's dispatcher keys as `key` (its id), if any: installed or
    swapped."""
    global _by_key
    # Django caches this list until its registry changes (a model registered later).
    # Positional (include_auto_created, include_swapped): the cache's key is made
    # half as fast from keywords, and this runs per event.
    models = apps.get_models(True, True)
    if _by_key is None or _by_key[0] is not models:
        _by_key = (models, {id(model): model for model in models})
    return _by_key[1].get(key)


def connected_class(key: int, sent: type[Model] | None) -> type | None:
    """The class a receiver was connected for: a model, or an abstract base of the model
    the signal was sent for; None if neither (a string, an instance, another object)."""
    found = model_for(key)
    if found is None and sent is not None:
        found = next((c for c in sent.__mro__[1:] if id(c) == key), None)
    return found


def why_not(
    signal: str, connected: type | None, sent: type[Model] | None, never_sent: bool
) -> tuple[str, bool]:
    """Why a receiver connected for `connected` did not run for a signal sent for `sent`,
    and whether that is as Django intends (to fold away)."""
    meta = getattr(connected, "_meta", None)
    if connected is None or meta is None:
        if never_sent:
            return (
                "connected for a sender this signal has not been sent with since start-up: "
                'most often a string like "app.Model", which only model signals resolve to the '
                "model (pass the class); or a class where instances are sent, or the other way "
                "round",
                False,
            )
        return ANOTHER_SENDER, True
    label = meta.label
    if meta.abstract:
        return (
            f"connected for {label}, an abstract model: signals are sent for concrete models "
            f"only (this one for {sent._meta.label if sent else '?'}); connect it for each",
            False,
        )
    if meta.swapped:
        return (
            f"connected for {label}, which {meta.swappable} swaps for {meta.swapped}: it is "
            f"never sent for; connect it for the model that setting names",
            False,
        )
    if sent is not None:
        if (
            sent._meta.proxy
            and issubclass(sent, connected)
            and sent._meta.concrete_model is meta.concrete_model
        ):
            return (
                f"connected for {label} only, and this was sent for {sent._meta.label}, a proxy "
                "of it: Django runs a receiver only for the very class it was connected for "
                "(connect it for the proxy too)",
                False,
            )
        if signal == "m2m_changed" and sent._meta.auto_created and connected in _ends(sent):
            return (
                f"connected for {label}, but m2m_changed is sent with the relation's through "
                f"model, {sent._meta.label}: connect it for {label}.<field>.through",
                False,
            )
    return f"connected for {label}", True


def _ends(through: type[Model]) -> set[Any]:
    """The models an auto-created many-to-many table links."""
    return {f.related_model for f in through._meta.fields if f.many_to_one}
