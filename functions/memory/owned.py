"""The one helper every memory resource stores its rows with: a table of rows owned by one identity (platform tenant,
service tenant, user), keyed by a few more columns, optionally versioned.

Every method takes a connection inside ``Database.transaction(identity)`` (so row-level security sees the caller)
and the caller's :class:`~soorma.identity.Identity`. Statements also name the identity columns explicitly: RLS is
the guarantee, the explicit predicates make the intended index obvious to the reader and the planner. Values of the
table's JSON columns are sent as ``jsonb``. The route-side helpers (:meth:`OwnedTable.fetch`,
:meth:`OwnedTable.remove`, :meth:`OwnedTable.store`, :meth:`OwnedTable.change`, ...) turn "no row" into the HTTP
answers every resource gives; :class:`Lookup` finds a row by any one of the ids it lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from fastapi import HTTPException, status
from psycopg.types.json import Jsonb

from soorma.functions.memory.common import check_path
from soorma.functions.shared.db import Database
from soorma.identity import Identity

Row = dict[str, Any]

#: The caller's rows: the predicate every statement carries (parameters of :func:`owner_params`).
OWNED = "platform_tenant_id = %(pt)s and service_tenant_id = %(st)s and service_user_id = %(su)s"
OWNER_COLUMNS = "platform_tenant_id, service_tenant_id, service_user_id"
_OWNER_VALUES = "%(pt)s, %(st)s, %(su)s"


def owner_params(identity: Identity, **more: Any) -> dict[str, Any]:
    """The statement parameters ``pt``, ``st``, ``su`` of :data:`OWNED` for ``identity``, and ``more``."""
    return {
        "pt": identity.platform_tenant_id,
        "st": identity.service_tenant_id,
        "su": identity.service_user_id,
        **more,
    }


def visible_owner(row: Row, identity: Identity) -> Row:
    """``row`` as the caller may see it: another identity's (public) row without its author's service tenant and
    user (public rows are shared, their authors' ids are not)."""
    if row["service_tenant_id"] == identity.service_tenant_id and row["service_user_id"] == identity.service_user_id:
        return row
    return {**row, "service_tenant_id": None, "service_user_id": None}


@dataclass(frozen=True)
class OwnedTable:
    """``memory.<name>``: rows of one identity, one row per ``key`` (columns besides the identity's); ``noun``
    names a row in error messages (``"task context"``).

    ``json_columns`` are sent as ``jsonb`` (``None`` as JSON ``null``); ``versioned`` tables bump ``version`` on
    every write and take an expected version (optimistic concurrency: a write whose expected version is not the
    stored one changes nothing); ``touch`` is the assignment every write adds (the table's "last changed" column);
    ``lookup`` is kept listing the ids of the row's list column by every write."""

    name: str
    noun: str
    key: tuple[str, ...]
    json_columns: frozenset[str] = field(default_factory=frozenset)
    versioned: bool = False
    touch: str = "updated_at = now()"
    lookup: Lookup | None = None

    def _params(self, identity: Identity, values: Mapping[str, Any]) -> dict[str, Any]:
        return owner_params(
            identity,
            **{c: Jsonb(v) if c in self.json_columns else v for c, v in values.items()},
        )

    def _match(self, columns: Sequence[str]) -> str:
        return OWNED + "".join(f" and {c} = %({c})s" for c in columns)

    def _expected(self, alias: str) -> str:
        return f"(%(expected)s::integer is null or {alias}version = %(expected)s::integer)"

    def get(self, conn: psycopg.Connection, identity: Identity, **key: Any) -> Row | None:
        """The caller's row with this key, or ``None``."""
        return conn.execute(
            f"select * from memory.{self.name} where {self._match(list(key))}", self._params(identity, key)
        ).fetchone()

    def select(
        self,
        conn: psycopg.Connection,
        identity: Identity,
        *,
        order_by: str,
        limit: int,
        columns: str = "*",
        where: str = "",
        params: Mapping[str, Any] | None = None,
        **equal: Any,
    ) -> list[Row]:
        """The caller's rows whose columns equal ``equal`` (a ``None`` value is no filter) and that meet ``where``
        (SQL over ``params``), in ``order_by`` order, at most ``limit``."""
        given = {c: v for c, v in equal.items() if v is not None}
        return conn.execute(
            f"select {columns} from memory.{self.name} where {self._match(list(given))}{where}"
            f" order by {order_by} limit %(limit)s",
            {**self._params(identity, given), **(params or {}), "limit": limit},
        ).fetchall()

    def delete(self, conn: psycopg.Connection, identity: Identity, **key: Any) -> int:
        """Delete the caller's rows with these column values (the whole key, or a prefix of it); returns how many."""
        return conn.execute(
            f"delete from memory.{self.name} where {self._match(list(key))}", self._params(identity, key)
        ).rowcount

    def insert(
        self,
        conn: psycopg.Connection,
        identity: Identity,
        values: Mapping[str, Any],
        *,
        if_absent: bool = False,
        returning: str = "*",
    ) -> Row | None:
        """Insert one row of the caller; with ``if_absent``, ``None`` (and nothing written) when the caller already
        has a row with this key."""
        columns = ", ".join(values)
        placeholders = ", ".join(f"%({c})s" for c in values)
        conflict = f" on conflict ({OWNER_COLUMNS}, {', '.join(self.key)}) do nothing" if if_absent else ""
        return conn.execute(
            f"insert into memory.{self.name} ({OWNER_COLUMNS}, {columns}) values ({_OWNER_VALUES}, {placeholders})"
            f"{conflict} returning {returning}",
            self._params(identity, values),
        ).fetchone()

    def upsert(
        self,
        conn: psycopg.Connection,
        identity: Identity,
        values: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        conflict: str | None = None,
        update: Sequence[str] | None = None,
        insert_sql: Mapping[str, str] | None = None,
        update_sql: Mapping[str, str] | None = None,
        where: str | None = None,
        returning: str = "*",
        params: Mapping[str, Any] | None = None,
    ) -> Row | None:
        """Insert the caller's row, or change the one it has with this key, in one statement (so concurrent
        writers never lose each other's change); the stored row, or ``None`` when the existing row was left alone
        (``expected_version`` given and another version stored, or ``where`` false).

        ``values``: every column written (key included). ``update``: the columns an existing row takes from
        ``values`` (default: all but the key). ``insert_sql``/``update_sql``: SQL expressions that replace a value
        (the existing row is ``r``; ``update_sql`` may add columns). ``conflict``: the ON CONFLICT arbiter when it is
        not the identity and key (a partial unique index). ``params``: more statement parameters."""
        insert_sql, update_sql = insert_sql or {}, update_sql or {}
        columns = ", ".join(values)
        placeholders = ", ".join(insert_sql.get(c, f"%({c})s") for c in values)
        changed = [c for c in values if c not in self.key] if update is None else list(update)
        assignments = [f"{c} = {update_sql.get(c, f'excluded.{c}')}" for c in changed]
        assignments += [f"{c} = {expression}" for c, expression in update_sql.items() if c not in changed]
        if self.versioned:
            assignments.append("version = r.version + 1")
        assignments.append(self.touch)
        condition = where if where is not None else self._expected("r.") if self.versioned else None
        arbiter = conflict or f"({OWNER_COLUMNS}, {', '.join(self.key)})"
        row: Row | None = conn.execute(
            f"insert into memory.{self.name} as r ({OWNER_COLUMNS}, {columns})"
            f" values ({_OWNER_VALUES}, {placeholders})"
            f" on conflict {arbiter} do update set {', '.join(assignments)}"
            + (f" where {condition}" if condition else "")
            + f" returning {returning}",
            {**self._params(identity, values), "expected": expected_version, **(params or {})},
        ).fetchone()
        if row is not None and self.lookup is not None:
            self.lookup.sync(conn, identity, self, row)
        return row

    def update(
        self,
        conn: psycopg.Connection,
        identity: Identity,
        key: Mapping[str, Any],
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
    ) -> Row | None:
        """Set ``changes`` on the caller's row with ``key`` (and bump its version); ``None`` when no row matched
        (none, or another version than ``expected_version``)."""
        assignments = [f"{c} = %({c})s" for c in changes]
        if self.versioned:
            assignments.append("version = version + 1")
        assignments.append(self.touch)
        condition = f" and {self._expected('')}" if self.versioned else ""
        row: Row | None = conn.execute(
            f"update memory.{self.name} set {', '.join(assignments)} where {self._match(list(key))}{condition}"
            " returning *",
            {**self._params(identity, {**changes, **key}), "expected": expected_version},
        ).fetchone()
        if row is not None and self.lookup is not None and self.lookup.list_column in changes:
            self.lookup.sync(conn, identity, self, row)
        return row

    def find(self, conn: psycopg.Connection, identity: Identity, listed: str) -> Row | None:
        """The caller's row whose :attr:`lookup` lists ``listed``, or ``None``."""
        assert self.lookup is not None, f"memory.{self.name} has no lookup"
        return conn.execute(self.lookup.sql(self), owner_params(identity, **{self.lookup.param: listed})).fetchone()

    # -- route side: HTTP answers --------------------------------------------------------------------------------

    def not_found(self, key: Mapping[str, Any]) -> HTTPException:
        """The 404 for the row with ``key``: ``"<noun> not found: <key values joined by />"``."""
        return HTTPException(status.HTTP_404_NOT_FOUND, f"{self.noun} not found: {_label(key)}")

    def fetch(self, db: Database, identity: Identity, **key: Any) -> Row:
        """The caller's row with ``key`` in a transaction of its own; 422 when a key value holds NUL, 404 when there
        is no such row."""
        _check_key(key)
        with db.transaction(identity) as conn:
            row = self.get(conn, identity, **key)
        if row is None:
            raise self.not_found(key)
        return row

    def remove(self, db: Database, identity: Identity, **key: Any) -> None:
        """Delete the caller's row with ``key`` in a transaction of its own; 422 when a key value holds NUL, 404 when
        there was no such row."""
        _check_key(key)
        with db.transaction(identity) as conn:
            count = self.delete(conn, identity, **key)
        if not count:
            raise self.not_found(key)

    def fetch_listed(self, db: Database, identity: Identity, listed: str) -> Row:
        """:meth:`find` in a transaction of its own; 422 when ``listed`` holds NUL, 404 when no row lists it."""
        assert self.lookup is not None, f"memory.{self.name} has no lookup"
        check_path(listed, self.lookup.id_column)
        with db.transaction(identity) as conn:
            row = self.find(conn, identity, listed)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {self.noun} lists {self.lookup.what} {listed}")
        return row

    def store(self, db: Database, identity: Identity, values: Mapping[str, Any], expected_version: int | None) -> Row:
        """:meth:`upsert` in a transaction of its own; 409 (or 404) from :meth:`conflict` when it changed nothing."""
        with db.transaction(identity) as conn:
            row = self.upsert(conn, identity, values, expected_version=expected_version)
            if row is None:
                raise self.conflict(conn, identity, expected_version, **{c: values[c] for c in self.key})
        return row

    def change(
        self,
        db: Database,
        identity: Identity,
        key: Mapping[str, Any],
        changes: Mapping[str, Any],
        expected_version: int | None = None,
    ) -> Row:
        """:meth:`update` in a transaction of its own; 422 when a key value holds NUL, 404 when there is no such
        row, 409 when it has another version than ``expected_version``."""
        _check_key(key)
        with db.transaction(identity) as conn:
            row = self.update(conn, identity, key, changes, expected_version=expected_version)
            if row is None:
                raise self.conflict(conn, identity, expected_version, **key) if self.versioned else self.not_found(key)
        return row

    def conflict(
        self, conn: psycopg.Connection, identity: Identity, expected_version: int | None, **key: Any
    ) -> HTTPException:
        """Why a versioned write changed nothing: 404 when the caller has no row with ``key``, else 409 naming the
        stored version."""
        current = self.get(conn, identity, **key)
        if current is None:
            return self.not_found(key)
        return HTTPException(
            status.HTTP_409_CONFLICT,
            f"{self.noun} {_label(key)} is at version {current['version']}, not {expected_version}:"
            " read it again and retry",
        )


def _label(key: Mapping[str, Any]) -> str:
    return "/".join(str(value) for value in key.values())


def _check_key(key: Mapping[str, Any]) -> None:
    for column, value in key.items():
        check_path(str(value), column)


@dataclass(frozen=True)
class Lookup:
    """A side table that finds a row by any one of the ids in its ``list_column``: one side row per id, primary key
    identity + ``id_column``, so a lookup is a primary-key probe and then a unique-key probe of the parent table.

    ``param`` is the statement parameter of the id looked up (besides ``pt, st, su``); ``what`` names such an id in
    messages (``"sub-task"``)."""

    table: str
    id_column: str
    list_column: str
    param: str
    what: str

    def sql(self, parent: OwnedTable) -> str:
        """The lookup statement (parameters ``pt, st, su`` and :attr:`param`)."""
        joined = " and ".join(f"p.{c} = s.{c}" for c in (*OWNER_COLUMNS.split(", "), parent.key[0]))
        return (
            f"select p.* from memory.{self.table} s join memory.{parent.name} p on {joined}"
            " where s.platform_tenant_id = %(pt)s and s.service_tenant_id = %(st)s and s.service_user_id = %(su)s"
            f" and s.{self.id_column} = %({self.param})s"
        )

    def sync(self, conn: psycopg.Connection, identity: Identity, parent: OwnedTable, row: Row) -> None:
        """Make the side table list exactly ``row[list_column]`` for ``row`` (an id listed by another row of the same
        identity moves to this one: the latest write wins)."""
        key = parent.key[0]
        ids = list(row[self.list_column])
        params = owner_params(identity, key=row[key], ids=ids)
        conn.execute(
            f"delete from memory.{self.table} where {OWNED} and {key} = %(key)s"
            f" and not ({self.id_column} = any(%(ids)s::text[]))",
            params,
        )
        if ids:
            conn.execute(
                f"insert into memory.{self.table} ({OWNER_COLUMNS}, {self.id_column}, {key})"
                f" select {_OWNER_VALUES}, i, %(key)s from unnest(%(ids)s::text[]) as i"
                f" on conflict ({OWNER_COLUMNS}, {self.id_column})"
                f" do update set {key} = excluded.{key} where {self.table}.{key} <> excluded.{key}",
                params,
            )
