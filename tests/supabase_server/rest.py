"""PostgREST stand-in at ``/rest/v1/<table>``: the subset postgrest-py sends.

Reads: ``select`` (columns, ``alias:col``), filters (eq neq gt gte lt lte like
ilike is in cs cd, ``not.``, ``or=(...)``/``and=(...)``), ``order``, ``limit``,
``offset``, ``Range``, ``Prefer: count=exact``, single-object Accept.
Writes: insert (one or many, ``columns``, ``missing=default``), upsert
(``resolution=merge|ignore-duplicates`` + ``on_conflict``), update and delete
with filters (a WHERE clause is required, as Supabase's safeupdate wants),
``Prefer: return=representation|minimal``. Each statement is atomic.
Row level security mirrors the migrations: ``user_id = auth.uid()``;
service_role bypasses it; anon has no grants.
"""

from __future__ import annotations

import copy
import functools
import json
import operator
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .auth import AuthService, Identity, JwtError
from .schema import TABLES, Column, Table

Row = dict[str, Any]
Pred = Callable[[Row], bool | None]
RESERVED = {"select", "order", "limit", "offset", "on_conflict", "columns", "apikey"}


class RestError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"code": code, "details": details, "hint": hint, "message": message}

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


def _syntax(column: Column, value: Any) -> RestError:
    return RestError(400, "22P02", f'invalid input syntax for type {column.type}: "{value}"')


def _timestamp(value: Any, column: Column) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError as exc:
        raise _syntax(column, value) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def coerce(column: Column, value: Any) -> Any:
    """A JSON value as the column stores it (what PostgreSQL would accept)."""
    if value is None or column.type == "jsonb":
        return value
    kind = column.type
    if kind in ("bigint", "integer"):
        if isinstance(value, bool):
            raise _syntax(column, value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value))
        except ValueError as exc:
            raise _syntax(column, value) from exc
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "t", "1", "yes", "on"):
            return True
        if text in ("false", "f", "0", "no", "off"):
            return False
        raise _syntax(column, value)
    if kind == "timestamptz":
        return _timestamp(value, column).astimezone(UTC).isoformat()
    if kind == "uuid":
        try:
            return str(uuid.UUID(str(value)))
        except ValueError as exc:
            raise _syntax(column, value) from exc
    if kind == "text[]":
        if not isinstance(value, list):
            raise RestError(400, "22P02", f'malformed array literal: "{value}"')
        return [None if v is None else str(v) for v in value]
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _order_key(column: Column, value: Any) -> Any:
    if column.type == "timestamptz":
        return datetime.fromisoformat(value)
    if column.type in ("jsonb", "text[]"):
        return json.dumps(value, sort_keys=True)
    return value


def _row_key(column: Column, row: Row) -> Any:
    return _order_key(column, row[column.name])


def split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    parts, depth, quoted, current = [], 0, False, []
    escape = False
    for char in text:
        if escape:
            current.append(char)
            escape = False
            continue
        if char == "\\" and quoted:
            current.append(char)
            escape = True
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _like(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c in "*%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile(f"^{regex}$", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _array_literal(text: str) -> list[str | None]:
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")):
        raise RestError(400, "22P02", f'malformed array literal: "{text}"')
    body = inner[1:-1]
    if not body:
        return []
    return [None if item == "NULL" else _unquote(item) for item in split_top(body)]


class Query:
    """Parses the query string of one request against one table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def column(self, name: str) -> Column:
        column = self.table.column(name.strip('"'))
        if column is None:
            raise RestError(400, "42703", f"column {self.table.name}.{name} does not exist")
        return column

    def condition(self, name: str, expression: str) -> Pred:
        column = self.column(name)
        negate = expression.startswith("not.")
        if negate:
            expression = expression[4:]
        op, _, raw = expression.partition(".")
        test = self._operator(column, op, raw)

        def pred(row: Row) -> bool | None:
            result = test(row.get(column.name))
            return None if result is None else (not result if negate else result)

        return pred

    def _literal(self, column: Column, raw: str) -> Any:
        if column.type == "jsonb":
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        if column.type == "text[]":
            return _array_literal(raw)
        return coerce(column, raw)

    def _operator(self, column: Column, op: str, raw: str) -> Callable[[Any], bool | None]:
        cmp: dict[str, Callable[[Any, Any], bool]] = {
            "eq": operator.eq,
            "neq": operator.ne,
            "gt": operator.gt,
            "gte": operator.ge,
            "lt": operator.lt,
            "lte": operator.le,
        }
        if op in cmp:
            target = _order_key(column, self._literal(column, raw))
            fn = cmp[op]
            return lambda v: None if v is None else bool(fn(_order_key(column, v), target))
        if op in ("like", "ilike"):
            pattern = _like(raw, ignore_case=op == "ilike")
            return lambda v: None if v is None else bool(pattern.match(str(v)))
        if op == "is":
            word = raw.lower()
            if word == "null":
                return lambda v: v is None
            if word in ("true", "false"):
                flag = word == "true"
                return lambda v: v is flag
            if word == "unknown":
                return lambda v: v is None
            raise RestError(400, "PGRST100", f"failed to parse filter (is.{raw})")
        if op == "in":
            if not (raw.startswith("(") and raw.endswith(")")):
                raise RestError(400, "PGRST100", f"failed to parse filter (in.{raw})")
            items = [_unquote(i) for i in split_top(raw[1:-1])] if raw[1:-1] else []
            values = {_order_key(column, self._literal(column, i)) for i in items}
            return lambda v: None if v is None else _order_key(column, v) in values
        if op in ("cs", "cd"):
            target = self._literal(column, raw)
            if column.type == "text[]":
                wanted = set(target)
                if op == "cs":
                    return lambda v: None if v is None else wanted <= set(v)
                return lambda v: None if v is None else set(v) <= wanted
            if column.type == "jsonb" and isinstance(target, dict) and op == "cs":
                return lambda v: (
                    None if v is None else all(v.get(k) == t for k, t in target.items())
                )
        raise RestError(400, "PGRST100", f'"failed to parse filter ({op}.{raw})"')

    def logic(self, expression: str, *, conjunction: bool, negate: bool = False) -> Pred:
        if not (expression.startswith("(") and expression.endswith(")")):
            raise RestError(400, "PGRST100", f"failed to parse logic tree ({expression})")
        preds = [self._logic_item(item) for item in split_top(expression[1:-1])]

        def pred(row: Row) -> bool | None:
            results = [p(row) for p in preds]
            if conjunction:
                value = False if False in results else None if None in results else True
            else:
                value = True if True in results else None if None in results else False
            return None if value is None else (not value if negate else value)

        return pred

    def _logic_item(self, item: str) -> Pred:
        match = re.fullmatch(r"(not\.)?(and|or)(\(.*\))", item, re.DOTALL)
        if match:
            return self.logic(match[3], conjunction=match[2] == "and", negate=bool(match[1]))
        name, _, expression = item.partition(".")
        return self.condition(name, expression)

    def filters(self, params: Iterable[tuple[str, str]]) -> list[Pred]:
        preds = []
        for key, value in params:
            if key in RESERVED:
                continue
            logic = re.fullmatch(r"(not\.)?(and|or)", key)
            if logic:
                preds.append(
                    self.logic(value, conjunction=logic[2] == "and", negate=bool(logic[1]))
                )
            else:
                preds.append(self.condition(key, value))
        return preds

    def projection(self, select: str | None) -> list[tuple[str, str]]:
        """(output name, column) pairs."""
        if not select or select == "*":
            return [(c.name, c.name) for c in self.table.columns]
        result: list[tuple[str, str]] = []
        for item in split_top(select):
            item = item.strip()
            if item == "*":
                result += [(c.name, c.name) for c in self.table.columns]
                continue
            if "(" in item:
                raise RestError(
                    400,
                    "PGRST200",
                    f"Could not find a relationship between '{self.table.name}' "
                    f"and '{item.split('(')[0]}' in the schema cache",
                )
            alias, _, name = (
                item.rpartition(":") if ":" in item.replace("::", "") else ("", "", item)
            )
            name = name.split("::")[0]
            self.column(name)
            result.append((alias or name, name))
        return result

    def order(self, spec: str | None) -> Callable[[list[Row]], list[Row]]:
        terms: list[tuple[Column, bool, bool]] = []
        for term in split_top(spec) if spec else []:
            parts = term.split(".")
            column = self.column(parts[0])
            desc = "desc" in parts[1:]
            nulls_first = "nullsfirst" in parts[1:] or (desc and "nullslast" not in parts[1:])
            terms.append((column, desc, nulls_first))

        def apply(rows: list[Row]) -> list[Row]:
            for column, desc, nulls_first in reversed(terms):
                present = [r for r in rows if r.get(column.name) is not None]
                absent = [r for r in rows if r.get(column.name) is None]
                present.sort(key=functools.partial(_row_key, column), reverse=desc)
                rows = absent + present if nulls_first else present + absent
            return rows

        return apply


class RestService:
    """In-memory tables with PostgreSQL-like constraints. Thread-safe."""

    def __init__(self, auth: AuthService, tables: Iterable[Table] = TABLES) -> None:
        self.auth = auth
        self.tables = {t.name: t for t in tables}
        self.rows: dict[str, list[Row]] = {name: [] for name in self.tables}
        self._identity_seq: dict[str, int] = {name: 0 for name in self.tables}
        self._lock = threading.RLock()
        self._now = ""  # now() of the running statement: one value per transaction

    def snapshot(self, table: str) -> list[Row]:
        """A copy of every row of a table, ignoring RLS (for assertions)."""
        with self._lock:
            return copy.deepcopy(self.rows[table])

    def clear(self, table: str) -> None:
        """Delete every row of a table, ignoring RLS."""
        with self._lock:
            self.rows[table] = []

    # -- row rules ------------------------------------------------------

    @staticmethod
    def _visible(identity: Identity, row: Row) -> bool:
        return identity.is_service or (
            identity.sub is not None and row.get("user_id") == identity.sub
        )

    def _rls_check(self, table: Table, identity: Identity, row: Row) -> None:
        if not self._visible(identity, row):
            raise RestError(
                403, "42501", f'new row violates row-level security policy for table "{table.name}"'
            )

    def _default(self, table: Table, column: Column, identity: Identity) -> Any:
        default = column.default
        if default is None:
            return None
        if default == "gen_random_uuid":
            return str(uuid.uuid4())
        if default == "now":
            return self._now
        if default == "auth.uid":
            return identity.sub
        if default == "identity":
            self._identity_seq[table.name] += 1
            return self._identity_seq[table.name]
        return json.loads(default)

    def _validate(self, table: Table, row: Row) -> None:
        for column in table.columns:
            value = row.get(column.name)
            if value is None and not column.nullable:
                raise RestError(
                    400,
                    "23502",
                    f'null value in column "{column.name}" of relation "{table.name}" violates '
                    "not-null constraint",
                )
            if column.check is not None and not column.check(value):
                raise RestError(
                    400,
                    "23514",
                    f'new row for relation "{table.name}" violates check constraint '
                    f'"{table.name}_{column.name}_check"',
                )

    @staticmethod
    def _key(row: Row, columns: tuple[str, ...]) -> tuple[Any, ...] | None:
        values = tuple(row.get(c) for c in columns)
        return None if any(v is None for v in values) else values

    def _unique_check(self, table: Table, rows: list[Row]) -> None:
        for name, columns in table.constraints.items():
            seen: set[tuple[Any, ...]] = set()
            for row in rows:
                key = self._key(row, columns)
                if key is None:
                    continue
                if key in seen:
                    shown = ", ".join(columns)
                    values = ", ".join(str(v) for v in key)
                    raise RestError(
                        409,
                        "23505",
                        f'duplicate key value violates unique constraint "{name}"',
                        details=f"Key ({shown})=({values}) already exists.",
                    )
                seen.add(key)

    def _build(
        self, table: Table, identity: Identity, data: Row, columns: list[str], fill: bool
    ) -> Row:
        row: Row = {}
        for column in table.columns:
            if column.name in columns and (column.name in data or not fill):
                row[column.name] = coerce(column, data.get(column.name))
            else:
                row[column.name] = self._default(table, column, identity)
        return row

    # -- statements -------------------------------------------------------

    def insert(
        self,
        table: Table,
        identity: Identity,
        payload: list[Row],
        columns: list[str],
        *,
        fill_missing: bool,
        resolution: str | None,
        on_conflict: tuple[str, ...] | None,
    ) -> list[Row]:
        for name in columns:
            if table.column(name) is None:
                raise RestError(
                    400,
                    "PGRST204",
                    f"Could not find the '{name}' column of '{table.name}' in the schema cache",
                )
        conflict = on_conflict or table.primary_key
        if resolution and conflict not in table.constraints.values():
            raise RestError(
                400,
                "42P10",
                "there is no unique or exclusion constraint matching the ON CONFLICT specification",
            )
        with self._lock:
            self._now = datetime.now(UTC).isoformat()
            rows = [dict(r) for r in self.rows[table.name]]
            result: list[Row] = []
            touched: set[int] = set()
            for data in payload:
                new = self._build(table, identity, data, columns, fill_missing)
                key = self._key(new, conflict) if resolution else None
                existing = next(
                    (
                        i
                        for i, r in enumerate(rows)
                        if key is not None and self._key(r, conflict) == key
                    ),
                    None,
                )
                if existing is None:
                    self._rls_check(table, identity, new)
                    self._validate(table, new)
                    rows.append(new)
                    touched.add(len(rows) - 1)
                    result.append(new)
                    continue
                if resolution == "ignore":
                    continue
                if existing in touched:
                    raise RestError(
                        400,
                        "21000",
                        "ON CONFLICT DO UPDATE command cannot affect row a second time",
                    )
                old = rows[existing]
                if not self._visible(identity, old):
                    raise RestError(
                        403,
                        "42501",
                        f'new row violates row-level security policy (USING expression) for table "{table.name}"',
                    )
                merged = dict(old)
                for name in columns:
                    if name in data or not fill_missing:
                        merged[name] = new[name]
                if table.touch_updated_at:
                    merged["updated_at"] = self._now
                self._rls_check(table, identity, merged)
                self._validate(table, merged)
                rows[existing] = merged
                touched.add(existing)
                result.append(merged)
            self._unique_check(table, rows)
            self.rows[table.name] = rows
            return copy.deepcopy(result)

    def select(self, table: Table, identity: Identity, preds: list[Pred]) -> list[Row]:
        with self._lock:
            return [
                copy.deepcopy(r)
                for r in self.rows[table.name]
                if self._visible(identity, r) and all(p(r) is True for p in preds)
            ]

    def update(self, table: Table, identity: Identity, preds: list[Pred], data: Row) -> list[Row]:
        changes = {}
        for name, value in data.items():
            column = table.column(name)
            if column is None:
                raise RestError(
                    400,
                    "PGRST204",
                    f"Could not find the '{name}' column of '{table.name}' in the schema cache",
                )
            changes[name] = coerce(column, value)
        with self._lock:
            self._now = datetime.now(UTC).isoformat()
            rows = [dict(r) for r in self.rows[table.name]]
            result = []
            for i, row in enumerate(rows):
                if not self._visible(identity, row) or not all(p(row) is True for p in preds):
                    continue
                row.update(changes)
                if table.touch_updated_at:
                    row["updated_at"] = self._now
                self._rls_check(table, identity, row)
                self._validate(table, row)
                rows[i] = row
                result.append(row)
            self._unique_check(table, rows)
            self.rows[table.name] = rows
            return copy.deepcopy(result)

    def record_reads(self, identity: Identity, args: dict[str, Any]) -> int:
        """``public.hubsync_record_reads`` of the migrations: one more access per path
        named (a path named twice counts twice), on the caller's own rows."""
        paths, bucket = args.get("p_paths"), args.get("p_bucket")
        if not isinstance(paths, list) or not isinstance(bucket, str):
            raise RestError(400, "PGRST202", "hubsync_record_reads(p_bucket, p_paths) expected")
        user = identity.sub or args.get("p_user")
        counts = {p: paths.count(p) for p in paths}
        with self._lock:
            now = datetime.now(UTC).isoformat()
            touched = 0
            for row in self.rows["file_metadata"]:
                if row.get("user_id") != user or row.get("bucket_id") != bucket:
                    continue
                n = counts.get(row.get("path"))
                if n:
                    row["access_count"] = (row.get("access_count") or 0) + n
                    row["last_accessed"] = now
                    touched += 1
            return touched

    def delete(self, table: Table, identity: Identity, preds: list[Pred]) -> list[Row]:
        with self._lock:
            keep: list[Row] = []
            gone: list[Row] = []
            for row in self.rows[table.name]:
                hit = self._visible(identity, row) and all(p(row) is True for p in preds)
                (gone if hit else keep).append(row)
            self.rows[table.name] = keep
            return copy.deepcopy(gone)


# -- HTTP --------------------------------------------------------------------


def _prefer(request: web.Request) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for header in request.headers.getall("Prefer", []):
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            if name:
                prefs[name] = value
    return prefs


def _identity(auth: AuthService, request: web.Request) -> Identity:
    value = request.headers.get("Authorization", "")
    token = (
        value[7:].strip()
        if value.lower().startswith("bearer ")
        else request.headers.get("apikey") or request.query.get("apikey", "")
    )
    try:
        return auth.identity(token)
    except JwtError as exc:
        if exc.expired:
            raise RestError(401, "PGRST303", "JWT expired") from exc
        raise RestError(401, "PGRST301", "JWSError JWSInvalidSignature") from exc


def _project(rows: list[Row], projection: list[tuple[str, str]]) -> list[Row]:
    return [{alias: row.get(name) for alias, name in projection} for row in rows]


class RestHandlers:
    def __init__(self, service: RestService) -> None:
        self.s = service

    async def handle(self, request: web.Request, tail: str) -> web.StreamResponse:
        try:
            return await self._handle(request, tail)
        except RestError as error:
            return error.response()

    async def _handle(self, request: web.Request, tail: str) -> web.StreamResponse:
        identity = _identity(self.s.auth, request)
        name = tail.strip("/")
        if name.startswith("rpc/"):
            return await self._rpc(request, identity, name[len("rpc/") :])
        table = self.s.tables.get(name)
        if table is None:
            raise RestError(
                404, "PGRST205", f"Could not find the table 'public.{name}' in the schema cache"
            )
        if identity.role == "anon":
            raise RestError(401, "42501", f"permission denied for table {table.name}")
        query = Query(table)
        params = list(request.query.items())
        preds = query.filters(params)
        projection = query.projection(request.query.get("select"))
        prefer = _prefer(request)
        method = request.method
        if method in ("GET", "HEAD"):
            rows = query.order(request.query.get("order"))(self.s.select(table, identity, preds))
            total = len(rows)
            offset, limit = self._window(request)
            page = rows[offset : offset + limit if limit is not None else None]
            return self._respond(request, _project(page, projection), 200, prefer, total, offset)
        body = await self._body(request)
        if method == "POST":
            payload = body if isinstance(body, list) else [body]
            if not all(isinstance(r, dict) for r in payload):
                raise RestError(400, "PGRST102", "All object keys must match")
            if "columns" in request.query:
                columns = [c.strip().strip('"') for c in request.query["columns"].split(",")]
            else:
                columns = list(dict.fromkeys(k for r in payload for k in r))
            resolution = prefer.get("resolution", "").removesuffix("-duplicates") or None
            conflict = request.query.get("on_conflict")
            rows = self.s.insert(
                table,
                identity,
                payload,
                columns,
                fill_missing=prefer.get("missing") == "default",
                resolution=resolution,
                on_conflict=tuple(c.strip() for c in conflict.split(",")) if conflict else None,
            )
            return self._respond(request, _project(rows, projection), 201, prefer, len(rows), 0)
        if method in ("PATCH", "DELETE"):
            if not preds:
                raise RestError(
                    400,
                    "21000",
                    f"{'UPDATE' if method == 'PATCH' else 'DELETE'} requires a WHERE clause",
                )
            if method == "PATCH":
                if not isinstance(body, dict):
                    raise RestError(400, "PGRST102", "Empty or invalid json")
                rows = self.s.update(table, identity, preds, body)
            else:
                rows = self.s.delete(table, identity, preds)
            return self._respond(request, _project(rows, projection), 200, prefer, len(rows), 0)
        raise RestError(405, "PGRST117", f"Unsupported HTTP method: {method}")

    async def _rpc(self, request: web.Request, identity: Identity, name: str) -> web.Response:
        if name != "hubsync_record_reads" or request.method != "POST":
            raise RestError(
                404,
                "PGRST202",
                f"Could not find the function public.{name} without parameters in the schema cache",
            )
        if identity.role == "anon":
            raise RestError(401, "42501", f"permission denied for function {name}")
        body = await self._body(request)
        return web.json_response(
            self.s.record_reads(identity, body if isinstance(body, dict) else {})
        )

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise RestError(400, "PGRST102", "Empty or invalid json") from exc

    @staticmethod
    def _window(request: web.Request) -> tuple[int, int | None]:
        try:
            offset = int(request.query.get("offset", "0"))
            limit = int(request.query["limit"]) if "limit" in request.query else None
        except ValueError as exc:
            raise RestError(400, "PGRST100", "failed to parse limit/offset") from exc
        match = re.fullmatch(r"(\d+)-(\d*)", request.headers.get("Range", ""))
        if match:
            offset = int(match[1])
            if match[2]:
                limit = int(match[2]) - offset + 1
        return offset, limit

    @staticmethod
    def _respond(
        request: web.Request,
        rows: list[Row],
        status: int,
        prefer: dict[str, str],
        total: int,
        offset: int,
    ) -> web.Response:
        counted = str(total) if prefer.get("count") in ("exact", "planned", "estimated") else "*"
        span = f"{offset}-{offset + len(rows) - 1}" if rows else "*"
        headers = {"Content-Range": f"{span}/{counted}"}
        if (
            request.method in ("POST", "PATCH", "DELETE")
            and prefer.get("return") != "representation"
        ):
            return web.Response(status=201 if request.method == "POST" else 204, headers=headers)
        if request.headers.get("Accept", "").startswith("application/vnd.pgrst.object+json"):
            if len(rows) != 1:
                return web.json_response(
                    {
                        "code": "PGRST116",
                        "details": f"The result contains {len(rows)} rows",
                        "hint": None,
                        "message": "Cannot coerce the result to a single JSON object",
                    },
                    status=406,
                )
            return web.json_response(rows[0], status=status, headers=headers)
        if request.method == "HEAD":
            return web.Response(status=status, headers=headers, content_type="application/json")
        return web.json_response(rows, status=status, headers=headers)
