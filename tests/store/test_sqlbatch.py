"""Multi-row statements write exactly what executemany writes, with few distinct statements."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway_agent.store.sqlbatch import _SIZES, _chunks, insert_rows, update_rows

rows_st = st.lists(
    st.tuples(
        st.integers(-(2**40), 2**40), st.text(max_size=8), st.none() | st.floats(allow_nan=False)
    ),
    max_size=450,
)


def _db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, a INTEGER, b TEXT, c REAL)")
    return db


@settings(max_examples=60, deadline=None)
@given(rows_st)
def test_insert_rows_matches_executemany(rows: list[tuple[int, str, float | None]]) -> None:
    a, b = _db(), _db()
    insert_rows(a, "INSERT INTO t(a, b, c)", rows)
    b.executemany("INSERT INTO t(a, b, c) VALUES (?,?,?)", rows)
    q = "SELECT seq, a, b, c FROM t ORDER BY seq"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()  # same rowids, same order


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.integers(1, 600), st.text(max_size=6), max_size=450))
def test_update_rows_matches_executemany(new: dict[int, str]) -> None:
    a, b = _db(), _db()
    for db in (a, b):
        db.executemany(
            "INSERT INTO t(seq, a, b) VALUES (?, 0, 'old')", [(i,) for i in range(1, 501)]
        )
    update_rows(a, "t", "seq", ("b",), list(new.items()))
    b.executemany("UPDATE t SET b=? WHERE seq=?", [(v, k) for k, v in new.items()])
    q = "SELECT seq, a, b FROM t ORDER BY seq"
    assert a.execute(q).fetchall() == b.execute(q).fetchall()


def test_few_distinct_statements_whatever_the_row_count() -> None:
    sizes = {size for n in range(0, 1000) for _, size in _chunks(n)}
    assert sizes <= set(_SIZES)
