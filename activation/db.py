"""Database expressions activation needs on both SQLite and PostgreSQL.

Pseudonymous ids are HMAC-SHA256 computed inside the database, so they come out of the same
set-based query that selects the rows (and out of COPY on PostgreSQL). PostgreSQL builds the
HMAC from its built-in ``sha256(bytea)`` and the key pads below (no extension needed); SQLite
calls ``cdp_hmac_sha256``, registered on each new connection. Both equal ``pseudonymous_id``.
"""

from __future__ import annotations

import hashlib
import hmac

from django.db.models import CharField, Func


def pseudonymous_id(secret: str, profile_id: int) -> str:
    """The id a destination knows a person by: HMAC-SHA256(secret, str(profile id)), hex."""
    return hmac.new(secret.encode(), str(profile_id).encode(), hashlib.sha256).hexdigest()


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def _sqlite_hmac_sha256(key: str | None, message: str | None) -> str | None:
    if key is None or message is None:
        return None
    return hmac.new(key.encode(), str(message).encode(), hashlib.sha256).hexdigest()


def register_sqlite_functions(sender, connection, **kwargs) -> None:
    """connection_created handler: give SQLite the HMAC function."""
    if connection.vendor == "sqlite":
        connection.connection.create_function(
            "cdp_hmac_sha256", 2, _sqlite_hmac_sha256, deterministic=True
        )


class HmacSha256(Func):
    """HMAC-SHA256(key, text expression) as lower-case hex, computed by the database."""

    output_field = CharField()

    def __init__(self, expression, *, key: str, **extra):
        self.key = key
        super().__init__(expression, **extra)

    def as_sql(self, compiler, connection, **extra_context):
        arg_sql, arg_params = compiler.compile(self.source_expressions[0])
        return f"cdp_hmac_sha256(%s, {arg_sql})", [self.key, *arg_params]

    def as_postgresql(self, compiler, connection, **extra_context):
        arg_sql, arg_params = compiler.compile(self.source_expressions[0])
        ipad, opad = hmac_pads(self.key.encode())
        sql = (
            "encode(sha256(%s::bytea || sha256(%s::bytea || "
            f"convert_to(({arg_sql})::text, 'UTF8'))), 'hex')"
        )
        return sql, [opad, ipad, *arg_params]
