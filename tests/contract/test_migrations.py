"""Migrations follow expand, then contract (docs/design.md): during a rollout the code before a migration runs
against the schema after it, so a migration after a service's first may only add. A contract step (a drop, a
rename, a new NOT NULL, a type change) is allowed only where its file says `-- contract:` and why the code
before it no longer needs what it takes away."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MIGRATIONS = sorted(p for p in ROOT.glob("services/*/*/migrations/*.sql") if not p.name.startswith("001_"))
# What the code before a migration may trip over: a thing gone, renamed, narrowed or retyped under it.
CONTRACTING = re.compile(
    r"\bDROP\s+(TABLE|COLUMN|INDEX|VIEW|TYPE|CONSTRAINT|FUNCTION|TRIGGER)\b|\bRENAME\b|\bSET\s+NOT\s+NULL\b"
    r"|\bALTER\s+COLUMN\s+\w+\s+(SET\s+DATA\s+)?TYPE\b|\bADD\s+COLUMN\s+(IF\s+NOT\s+EXISTS\s+)?\w+\s+[^,;]*\bNOT\s+NULL\b(?![^,;]*\bDEFAULT\b)",
    re.IGNORECASE,
)


def without_comments(sql: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda p: f"{p.parts[-4]}/{p.name}")
def test_a_later_migration_only_expands_unless_it_says_why_it_may_contract(path):
    sql = path.read_text()
    found = [m.group(0) for m in CONTRACTING.finditer(without_comments(sql))]
    assert not found or "-- contract:" in sql, f"{path.name} contracts the schema ({', '.join(found)}) without a `-- contract:` note"


@pytest.mark.parametrize(("sql", "contracts"), [
    ("CREATE TABLE t (a int NOT NULL)", False),
    ("ALTER TABLE t ADD COLUMN b text", False),
    ("ALTER TABLE t ADD COLUMN b text NOT NULL DEFAULT ''", False),
    ("ALTER TABLE t ADD COLUMN b text NOT NULL", True),
    ("ALTER TABLE t DROP COLUMN b", True),
    ("ALTER TABLE t RENAME COLUMN a TO b", True),
    ("ALTER TABLE t ALTER COLUMN a SET NOT NULL", True),
    ("ALTER TABLE t ALTER COLUMN a TYPE bigint", True),
    ("DROP TABLE t", True),
    ("-- DROP TABLE t, one day\nCREATE INDEX i ON t (a)", False),
])
def test_what_counts_as_contracting(sql, contracts):
    assert bool(CONTRACTING.search(without_comments(sql))) is contracts
