"""Client companies for the operator's command line (dialer/cli_companies.py): list them with
their lead counts, find one by name or id, edit a company's calendar columns, upsert many.

The calendar itself (what the JSON columns mean, whether they open at all) is
scheduling/calendar.py's business, which db/ may not import: the writers here take the
caller's `edit` (current column values -> new ones) and `validate` (the changed row; raises
to refuse it) and run them inside the write's transaction, so a refused edit changes
nothing and two concurrent edits cannot lose one another.

Errors: as in db/repositories.py, SQLAlchemy errors leave here as `RepositoryError`; what the
callbacks raise passes through (the transaction is rolled back).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from db.models import Company, Lead
from db.repositories import Sessions, transaction, translated

__all__ = ["CALENDAR_FIELDS", "CompanyUpsert", "UpsertResult", "company_by_key",
           "list_companies", "update_company", "upsert_companies"]

#: the columns an edit may change (a company's name and id stay as they are)
CALENDAR_FIELDS = ("timezone", "weekly_hours", "holiday_country", "holiday_subdivision",
                   "closures", "special_days")

#: current values of CALENDAR_FIELDS (None for a company being created) -> the new values
Edit = Callable[[Mapping[str, Any] | None], Mapping[str, Any]]


def calendar_values(company: Company) -> dict[str, Any]:
    """The company's CALENDAR_FIELDS as a plain dict (copies of the JSON values)."""
    out: dict[str, Any] = {}
    for k in CALENDAR_FIELDS:
        v = getattr(company, k)
        out[k] = (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
    return out


def _set(company: Company, values: Mapping[str, Any]) -> bool:
    """Write the CALENDAR_FIELDS of `values` on the row; True if anything changed."""
    unknown = set(values) - set(CALENDAR_FIELDS)
    if unknown:
        raise ValueError(f"not a company calendar field: {sorted(unknown)}")
    changed = False
    for k, v in values.items():
        if getattr(company, k) != v:
            setattr(company, k, v)
            changed = True
    return changed


@translated
async def list_companies(sessions: Sessions) -> list[tuple[Company, int]]:
    """Every company, by name, with its number of leads (in any campaign)."""
    counts = (select(Lead.company_id, func.count().label("n"))
              .where(Lead.company_id.is_not(None)).group_by(Lead.company_id).subquery())
    stmt = (select(Company, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.company_id == Company.id).order_by(Company.name))
    async with sessions() as s:
        return [(c, int(n)) for c, n in (await s.execute(stmt)).all()]


async def _by_key(s: Any, key: str | int, *, for_update: bool = False) -> Company | None:
    """Exact name, else the one name equal ignoring case, else the id (a number)."""
    def q(*where: Any) -> Any:
        stmt = select(Company).where(*where)
        return stmt.with_for_update() if for_update else stmt

    if isinstance(key, str):
        found = await s.scalar(q(Company.name == key))
        if found is not None:
            return found
        # folded in Python: SQLite's lower() knows only ASCII letters
        folded = [i for i, n in (await s.execute(select(Company.id, Company.name))).all()
                  if n.casefold() == key.casefold()]
        if len(folded) == 1:
            return await s.scalar(q(Company.id == folded[0]))
        if not re.fullmatch(r"[0-9]{1,9}", key.strip()):
            return None
    return await s.scalar(q(Company.id == int(key)))


@translated
async def company_by_key(sessions: Sessions, key: str | int) -> tuple[Company, int] | None:
    """The company named `key` (exactly, else ignoring case) or with id `key`, and its number
    of leads; None if there is none."""
    async with sessions() as s:
        company = await _by_key(s, key)
        if company is None:
            return None
        n = await s.scalar(select(func.count()).select_from(Lead)
                           .where(Lead.company_id == company.id))
        return company, int(n or 0)


@translated
async def update_company(
    sessions: Sessions, key: str | int, *, edit: Edit,
    validate: Callable[[Company], None] | None = None,
) -> Company | None:
    """Edit one company's calendar columns in one transaction: `edit(current)` gives the new
    values, `validate(row)` checks the changed row (raise to refuse: nothing is written).
    Returns the row as stored, or None if no company has that name or id."""
    async with transaction(sessions, "update company") as s:
        company = await _by_key(s, key, for_update=True)
        if company is None:
            return None
        _set(company, edit(calendar_values(company)))
        if validate is not None:
            validate(company)
    return company


@dataclass(frozen=True)
class CompanyUpsert:
    """One company to create or update: `edit` gets its current values (None if new)."""

    name: str
    edit: Edit
    #: the caller's reference for this item (e.g. the file line)
    ref: int = 0


@dataclass(frozen=True)
class UpsertResult:
    ref: int
    #: the stored name (an existing company's own spelling)
    name: str
    #: "created", "updated", "unchanged" or "refused"
    action: str
    error: Exception | None = None


@translated
async def upsert_companies(
    sessions: Sessions, items: Sequence[CompanyUpsert], *, now: datetime,
    refuse: tuple[type[Exception], ...] = (ValueError,),
) -> list[UpsertResult]:
    """Create or update companies in one transaction. A company is matched by name (exactly,
    else ignoring case when only one matches); an item whose `edit` raises one of `refuse` is
    left out and reported as "refused" with the error, the others are written."""
    results: list[UpsertResult] = []
    async with transaction(sessions, "upsert companies") as s:
        existing = list((await s.scalars(select(Company))).all())
        exact = {c.name: c for c in existing}
        folded: dict[str, list[Company]] = {}
        for c in existing:
            folded.setdefault(c.name.casefold(), []).append(c)
        for item in items:
            company = exact.get(item.name)
            if company is None and len(folded.get(item.name.casefold(), [])) == 1:
                company = folded[item.name.casefold()][0]
            try:
                values = item.edit(calendar_values(company) if company is not None else None)
            except refuse as e:
                results.append(UpsertResult(item.ref, company.name if company else item.name,
                                            "refused", e))
                continue
            if company is None:
                company = Company(name=item.name, created_at=now, weekly_hours={},
                                  closures=[], special_days={})
                _set(company, values)
                s.add(company)
                exact[company.name] = company
                folded.setdefault(company.name.casefold(), []).append(company)
                results.append(UpsertResult(item.ref, company.name, "created"))
            else:
                changed = _set(company, values)
                results.append(UpsertResult(item.ref, company.name,
                                            "updated" if changed else "unchanged"))
    return results
