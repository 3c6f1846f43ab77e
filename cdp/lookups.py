"""``field__among=[...]``: ``__in`` for long lists of plain values, sent as one array.

``__in`` turns each value into its own placeholder: for the thousands of ids or keys an import
batch looks up, Django prepares every value, psycopg parses a statement with thousands of
``%s`` (too long for its statement cache) and PostgreSQL plans thousands of parameters; that
cost more process time than the rows it read. ``among`` sends ``column = ANY(%s::type[])``
with the list as one parameter on PostgreSQL, and ``column IN (%s, ...)`` elsewhere (SQLite:
callers keep their lists under its variable limit, as with ``__in``).

Values must be the column's plain database values (ints, strings); None never matches, as with
``__in``. Registered on every field and relation by ``CdpConfig.ready``.
"""

from __future__ import annotations

from django.core.exceptions import EmptyResultSet
from django.db.models import Lookup


class Among(Lookup):
    """``column = ANY(array)`` (PostgreSQL) or ``column IN (...)``: see the module docstring."""

    lookup_name = "among"
    prepare_rhs = False

    def get_prep_lookup(self):
        return [value for value in self.rhs if value is not None]

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(dict.fromkeys(self.rhs))
        if not values:
            raise EmptyResultSet
        if connection.vendor == "postgresql":
            # Without a length or precision: a cast to varchar(320) would cut a longer value
            # to a stored one's length and match it, where __in compares it whole.
            db_type = self.lhs.output_field.db_type(connection).split("(", 1)[0]
            return f"{lhs} = ANY(%s::{db_type}[])", [*lhs_params, values]
        marks = ", ".join(["%s"] * len(values))
        return f"{lhs} IN ({marks})", [*lhs_params, *values]
