"""Who a receiver was connected for, from the key Django's dispatcher files it under.

`Signal.connect(receiver, sender=X)` keeps only `id(X)`. A receiver so connected runs
only when the signal is sent with that very object: a proxy's save does not run one
connected for its model, nor a multi-table child's one connected for its parent, and
a plain Signal never resolves the string "app.Model" (model signals do). Those misses
are worth a person's attention; a receiver connected for an unrelated model is not.
"""

from typing import Any

from django.apps import apps
from django.db.models import Model

_by_key: tuple[Any, dict[int, type[Model]]] | None = None


def model_for(key: int) -> type[Model] | None:
    """The installed model Django's dispatcher keys as `key` (its id), if any."""
    global _by_key
    # Django caches this list until its registry changes (a model registered later).
    models = apps.get_models(include_auto_created=True)
    if _by_key is None or _by_key[0] is not models:
        _by_key = (models, {id(model): model for model in models})
    return _by_key[1].get(key)


def relation(sent: type[Model], connected: type[Model]) -> str | None:
    """How the model a signal was sent for stands to the one a receiver was connected
    for, when they are two views of the same rows; None for unrelated models."""
    if sent is connected:
        return None
    if issubclass(sent, connected):
        return "a proxy of it" if sent._meta.proxy else "a subclass of it (multi-table)"
    if issubclass(connected, sent):
        return "the model it is a proxy of" if connected._meta.proxy else "its parent (multi-table)"
    if sent._meta.concrete_model is connected._meta.concrete_model:
        return "a proxy of the same model"
    return None
