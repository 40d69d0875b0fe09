"""Which objects a write without signals was limited to, where its filter names them.

`Post.objects.filter(pk=4).update(...)` (a receiver's stamp, a counter) sends no signal;
its row names blog.Post #4 all the same, so that the object's timeline holds it. Read
from the QuerySet's WHERE clause (`query.where` and `query.base_table`, private APIs:
seam dashboard.W011): only the model's own pk (not a joined copy's) equal to a value,
or in a short list of values, beside anything else ANDed with it; any other filter
names nothing. Runs inside the caller's write, after it: a few attribute reads, never a
query, never raises.
"""

import uuid
from typing import Any

from django.db.models import QuerySet

from dashboard.seams import seam

SEAM = seam(
    "dashboard.W011",
    "QuerySet.query.where and base_table (a filter's lookups: lhs.target, lhs.alias, "
    "lookup_name, rhs)",
    "a write without signals names no object: an object's timeline leaves out the "
    "updates and deletes of it by pk",
)
MOST = 20  # pks named at most: a longer list names none (the row counts them)
PLAIN = (int, str, uuid.UUID)  # a value, not an expression, a subquery or an object


def pks(queryset: QuerySet) -> list[Any] | None:
    """The pks the filter limits the write to (it may have touched fewer), or None."""
    if not SEAM.ok:
        return None
    try:
        return _pks(queryset)
    except Exception as exc:  # a new shape of query: named nothing, from now on
        SEAM.fail(f"reading a filter raised {type(exc).__name__}: {exc}")
        return None


def _pks(queryset: QuerySet) -> list[Any] | None:
    query = queryset.query
    where = query.where
    if where.connector != "AND" or where.negated:
        return None
    model, table = queryset.model._meta.concrete_model, query.base_table
    found: list[Any] | None = None
    for lookup in where.children:  # a nested node (an OR, an exclude()) has no lhs
        lhs = getattr(lookup, "lhs", None)
        target = getattr(lhs, "target", None)  # a column's field
        owner = getattr(target, "model", None)  # (an expression's output field has none)
        if (
            not getattr(target, "primary_key", False)
            or owner is None
            or owner._meta.concrete_model is not model
            or getattr(lhs, "alias", None) != table  # the same model, joined (a self-FK)
        ):
            continue
        name, value = getattr(lookup, "lookup_name", None), lookup.rhs
        if name == "exact" and isinstance(value, PLAIN):
            these = [value]
        elif (
            name == "in"
            and isinstance(value, (list, tuple))
            and 0 < len(value) <= MOST
            and all(isinstance(v, PLAIN) for v in value)
        ):
            these = list(dict.fromkeys(value))
        else:
            continue
        # Each pk lookup ANDed limits it further: filter(pk__in=[a, b]).filter(pk=b) is b.
        found = these if found is None else [pk for pk in found if pk in these]
    return found or None


def probe() -> str | None:
    """At start-up: are a pk's exact and in lookups read as expected, and others not?"""
    from dashboard.models import StoredEvent

    objects = StoredEvent.objects
    found = (
        pks(objects.filter(pk=7)),
        pks(objects.filter(signal="x", pk__in=[3, 4])),
        pks(objects.filter(signal="x")),
    )
    if found != ([7], [3, 4], None):
        return f"pk=7, pk__in=[3, 4] and a filter of no pk read as {found}"
    return None
