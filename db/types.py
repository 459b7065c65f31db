"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, String, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB

# Row timestamps default to the one system clock (common/clock.py) at the DB edge; business
# logic passes its own `now`. `utcnow` stays the name db/models.py's column defaults use.
from common.clock import utc_now as utcnow

__all__ = ["JSONType", "Phone", "UTCDateTime", "str_enum", "utcnow"]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out.

    PostgreSQL stores ``timestamptz``; SQLite has no zone support, so we store naive UTC there
    and re-attach UTC on the way out. Naive datetimes are refused: a naive time in business
    logic is a bug (docs/architecture.md: "Times are aware").
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to a UTC column; pass an aware time")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def str_enum(enum_cls: type[enum.Enum], length: int = 24) -> Any:
    """Store an enum by value as VARCHAR (no native enum: adding a member needs no migration)."""
    from sqlalchemy import Enum

    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


JSONType = JSON().with_variant(JSONB(), "postgresql")
Phone = String(20)  # E.164: '+' and at most 15 digits

