"""Filing numbers (备案编号): province abbreviation, 算备, city code, year, a 4-digit sequence per city and year.

e.g. 豫算备410100-2026-0001. The sequence only ever grows, so a number is never reused, even after revocation.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from registry.filings.models import FilingNumberSequence

PATTERN = re.compile(r"^(?P<province>\w)算备(?P<city>[1-9]\d{5})-(?P<year>\d{4})-(?P<seq>\d{4,})$")


def format_number(province_abbreviation: str, city_code: str, year: int, sequence: int) -> str:
    return f"{province_abbreviation}算备{city_code}-{year:04d}-{sequence:04d}"


def issue_number(*, session: Session, province_abbreviation: str, city_code: str, year: int) -> str:
    """Take the next number for ``city_code`` and ``year`` inside the caller's transaction.

    The UPDATE takes the row's lock, so concurrent decisions for one city queue behind each other and get
    distinct numbers; a rolled-back decision gives its number back, which is never seen by anyone.
    """
    table = FilingNumberSequence.__table__
    # The year's first decision makes the row; two first decisions at once must not collide on it.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(table).values(city_code=city_code, year=year, last=0).on_conflict_do_nothing())
    session.execute(
        sa.update(table).where(table.c.city_code == city_code, table.c.year == year).values(last=table.c.last + 1)
    )
    last = session.execute(
        sa.select(table.c.last).where(table.c.city_code == city_code, table.c.year == year)
    ).scalar_one()
    session.expire_all()
    return format_number(province_abbreviation, city_code, year, last)
