"""PostgREST stand-in at ``/rest/v1/<table>``, running SQL on a real PostgreSQL.

Each request becomes one parameterised statement (see :mod:`.pgrst_query`)
run in its own transaction after, as PostgREST does,
``set_config('role', <JWT role>, true)`` and ``request.jwt.claims`` (plus
``request.jwt.claim.sub`` / ``.role``, ``request.method``, ``request.path``),
so the grants, constraints, triggers and row level security of the
project's migrations decide. Writes: insert (``columns``,
``missing=default``), upsert (``resolution=merge|ignore-duplicates`` +
``on_conflict``, else the primary key), update and delete (a WHERE clause
is required, as Supabase's safeupdate wants). ``Prefer: return=
representation|minimal`` and ``count=exact``; ``limit``/``offset`` or a
``Range`` header; single-object Accept. Errors are PostgREST's JSON
(code, message, details, hint) with its HTTP statuses (:mod:`.pg_errors`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from aiohttp import web
from psycopg import pq, sql

from .auth import AuthService, JwtError
from .pg_errors import error_body, status_for
from .pgrst_query import RestError, Translator, Where

SCHEMA = "public"
POOL_SIZE = 8
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TableInfo:
    """What PostgREST's schema cache knows of a table."""

    name: str
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]

    @property
    def qualified(self) -> sql.Composable:
        return sql.Identifier(SCHEMA, self.name)


_SCHEMA_SQL = """
select c.relname,
       array_agg(a.attname::text order by a.attnum),
       coalesce((select array_agg(k.attname::text order by k.attnum)
                 from pg_constraint p
                 join pg_attribute k on k.attrelid = p.conrelid and k.attnum = any(p.conkey)
                 where p.conrelid = c.oid and p.contype = 'p'), '{}')
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f')
group by c.oid, c.relname
"""


class ConnectionPool:
    """A few connections as the database owner, reused across requests."""

    def __init__(self, conninfo: str, size: int = POOL_SIZE) -> None:
        self.conninfo = conninfo
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(size)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            finally:
                if conn.info.transaction_status == pq.TransactionStatus.IDLE:
                    self._idle.append(conn)
                else:
                    await conn.close()

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        # A Supabase project's database runs in UTC; PostgREST answers in its zone.
        await conn.execute("set timezone to 'UTC'")
        return conn

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().close()


class RestService:
    """The database side: schema cache, statements, and direct access for tests."""

    def __init__(self, auth: AuthService) -> None:
        self.auth = auth
        self.conninfo: str | None = None
        self._pool: ConnectionPool | None = None
        self._tables: dict[str, TableInfo] = {}

    def attach(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self._pool = ConnectionPool(conninfo)
        self._tables = {}

    @property
    def pool(self) -> ConnectionPool:
        if self._pool is None:
            raise RuntimeError("the REST service has no database yet (start the server)")
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()

    # -- direct access for tests (as the database owner, RLS not applied) --

    def _owner(self) -> psycopg.Connection[Any]:
        if self.conninfo is None:
            raise RuntimeError("the REST service has no database yet (start the server)")
        return psycopg.connect(self.conninfo, autocommit=True)

    def snapshot(self, table: str) -> list[Row]:
        """Every row of a table, as PostgREST would render it, ignoring RLS."""
        query = sql.SQL("select coalesce(json_agg(t), '[]')::text from {} t").format(
            sql.Identifier(SCHEMA, table)
        )
        with self._owner() as conn, conn.cursor() as cur:
            cur.execute("set timezone to 'UTC'")
            row = cur.execute(query).fetchone()
        assert row is not None
        rows: list[Row] = json.loads(row[0])
        return rows

    def clear(self, table: str) -> None:
        """Delete every row of a table, ignoring RLS."""
        with self._owner() as conn:
            conn.execute(sql.SQL("delete from {}").format(sql.Identifier(SCHEMA, table)))

    def execute(self, statement: str, params: Iterable[Any] = ()) -> None:
        """Run SQL as the database owner (to add a constraint in a test, say)."""
        with self._owner() as conn:
            conn.execute(statement.encode(), list(params) or None)

    def add_auth_user(self, uid: str, email: str) -> None:
        """Record a user in ``auth.users``, as GoTrue would (foreign keys may point there)."""
        with self._owner() as conn:
            conn.execute(
                "insert into auth.users (id, email) values (%s, %s) on conflict do nothing",
                [uid, email],
            )

    # -- schema cache -------------------------------------------------------

    async def table(self, name: str) -> TableInfo:
        info = self._tables.get(name)
        if info is None:
            await self._load_schema()
            info = self._tables.get(name)
        if info is None:
            raise RestError(
                404,
                "PGRST205",
                f"Could not find the table '{SCHEMA}.{name}' in the schema cache",
            )
        return info

    async def _load_schema(self) -> None:
        async with self.pool.connection() as conn:
            cur = await conn.execute(_SCHEMA_SQL, [SCHEMA])
            rows = await cur.fetchall()
        self._tables = {r[0]: TableInfo(r[0], tuple(r[1]), tuple(r[2])) for r in rows}

    # -- statements -------------------------------------------------------

    async def run(
        self,
        claims: dict[str, Any],
        method: str,
        path: str,
        statement: sql.Composable,
        params: list[Any],
        *,
        returns_rows: bool,
    ) -> tuple[int, int | None, str, str | None]:
        """(rows, total or None, JSON array, JSON of the first row) of one statement."""
        role = str(claims.get("role") or "anon")
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "select set_config('role', %s, true),"
                " set_config('request.jwt.claims', %s, true),"
                " set_config('request.jwt.claim.sub', %s, true),"
                " set_config('request.jwt.claim.role', %s, true),"
                " set_config('request.method', %s, true),"
                " set_config('request.path', %s, true)",
                [role, json.dumps(claims), str(claims.get("sub") or ""), role, method, path],
            )
            cur = await conn.execute(statement, params)
            if not returns_rows:
                return max(cur.rowcount, 0), None, "[]", None
            row = await cur.fetchone()
        assert row is not None
        return int(row[1]), None if row[0] is None else int(row[0]), row[2], row[3]


# -- HTTP --------------------------------------------------------------------


def _prefer(request: web.Request) -> dict[str, str]:
    prefs: dict[str, str] = {}
    for header in request.headers.getall("Prefer", []):
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            if name:
                prefs[name] = value
    return prefs


def _token(request: web.Request) -> str:
    value = request.headers.get("Authorization", "")
    if value.lower().startswith("bearer "):
        return value[7:].strip()
    return request.headers.get("apikey") or request.query.get("apikey", "")


_AGGREGATE = sql.SQL(
    "count(*), coalesce(json_agg(_pgrst_t), '[]')::text, (json_agg(_pgrst_t) -> 0)::text"
)


@dataclass
class Statement:
    sql: sql.Composable
    params: list[Any]
    returns_rows: bool


class RestHandlers:
    def __init__(self, service: RestService) -> None:
        self.s = service

    async def handle(self, request: web.Request, tail: str) -> web.StreamResponse:
        signed_in = False
        try:
            claims = self._claims(request)
            signed_in = claims.get("role", "anon") != "anon"
            return await self._handle(request, tail, claims)
        except RestError as error:
            return web.json_response(error.body, status=error.status)
        except psycopg.Error as error:
            if error.sqlstate is None:
                body = {"code": "PGRST000", "details": str(error), "hint": None}
                message = "Could not connect with the database"
                return web.json_response({**body, "message": message}, status=503)
            status = status_for(error.sqlstate, signed_in=signed_in)
            return web.json_response(error_body(error), status=status)

    def _claims(self, request: web.Request) -> dict[str, Any]:
        try:
            return dict(self.s.auth.decode(_token(request)))
        except JwtError as exc:
            if exc.expired:
                raise RestError(401, "PGRST303", "JWT expired") from exc
            raise RestError(401, "PGRST301", "JWSError JWSInvalidSignature") from exc

    async def _handle(
        self, request: web.Request, tail: str, claims: dict[str, Any]
    ) -> web.StreamResponse:
        name = tail.strip("/")
        if name.startswith("rpc/"):
            return await self._rpc(request, claims, name[len("rpc/") :])
        table = await self.s.table(name)
        translator = Translator(table.name)
        where = translator.where(request.query.items())
        projection = translator.projection(request.query.get("select"), table.name)
        prefer = _prefer(request)
        representation = prefer.get("return") == "representation"
        counted = prefer.get("count") in ("exact", "planned", "estimated")
        method = request.method
        offset = 0
        if method in ("GET", "HEAD"):
            offset, limit = self._window(request)
            order = translator.order(request.query.get("order"))
            statement = self._select(table, where, projection, order, offset, limit, counted)
            status = 200
        elif method == "POST":
            statement = self._insert(
                table, projection, await self._body(request), request, prefer, representation
            )
            status = 201
        elif method in ("PATCH", "DELETE"):
            if where is None:
                verb = "UPDATE" if method == "PATCH" else "DELETE"
                raise RestError(400, "21000", f"{verb} requires a WHERE clause")
            if method == "PATCH":
                body = await self._body(request)
                if not isinstance(body, dict):
                    raise RestError(400, "PGRST102", "Empty or invalid json")
                statement = self._update(table, projection, where, body, representation)
            else:
                statement = self._delete(table, projection, where, representation)
            status = 200
        else:
            raise RestError(405, "PGRST117", f"Unsupported HTTP method: {method}")
        rows, total, body_json, first = await self.s.run(
            claims,
            method,
            request.path,
            statement.sql,
            statement.params,
            returns_rows=statement.returns_rows,
        )
        if method not in ("GET", "HEAD") and counted:
            total = rows
        return self._respond(request, status, representation, rows, total, offset, body_json, first)

    async def _rpc(self, request: web.Request, claims: dict[str, Any], name: str) -> web.Response:
        """``POST /rpc/<function>`` with named arguments: the function's result as JSON."""
        if request.method != "POST" or not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise RestError(
                404,
                "PGRST202",
                f"Could not find the function public.{name} without parameters in the schema cache",
            )
        body = await self._body(request)
        if not isinstance(body, dict):
            raise RestError(400, "PGRST102", "Empty or invalid json")
        arguments = sql.SQL(", ").join(
            sql.SQL("{} => %s").format(sql.Identifier(key)) for key in body
        )
        statement = sql.SQL("select null, 1, to_json({}({}))::text, null").format(
            sql.Identifier(SCHEMA, name), arguments
        )
        _, _, body_json, _ = await self.s.run(
            claims, "POST", request.path, statement, list(body.values()), returns_rows=True
        )
        return web.Response(text=body_json, content_type="application/json")

    # -- statement builders ---------------------------------------------------

    @staticmethod
    def _filtered(where: Where | None) -> tuple[sql.Composable, list[Any]]:
        if where is None:
            return sql.SQL(""), []
        return sql.SQL(" WHERE ") + where.sql, list(where.params)

    def _select(
        self,
        table: TableInfo,
        where: Where | None,
        projection: sql.Composable,
        order: sql.Composable,
        offset: int,
        limit: int | None,
        counted: bool,
    ) -> Statement:
        clause, params = self._filtered(where)
        relation = sql.Identifier(table.name)
        page = sql.SQL(" LIMIT %s OFFSET %s") if limit is not None else sql.SQL(" OFFSET %s")
        source = sql.SQL("SELECT {} FROM {} AS {}{}{}{}").format(
            projection, table.qualified, relation, clause, order, page
        )
        total = (
            sql.SQL("(SELECT count(*) FROM {} AS {}{})").format(table.qualified, relation, clause)
            if counted
            else sql.SQL("NULL::bigint")
        )
        query = sql.SQL(
            "WITH pgrst_source AS ({}) SELECT {}, {} FROM pgrst_source _pgrst_t"
        ).format(source, total, _AGGREGATE)
        window = [limit, offset] if limit is not None else [offset]
        return Statement(query, [*params, *window, *(params if counted else [])], True)

    def _insert(
        self,
        table: TableInfo,
        projection: sql.Composable,
        body: Any,
        request: web.Request,
        prefer: dict[str, str],
        representation: bool,
    ) -> Statement:
        payload = body if isinstance(body, list) else [body]
        if not all(isinstance(r, dict) for r in payload):
            raise RestError(400, "PGRST102", "All object keys must match")
        if "columns" in request.query:
            columns = [c.strip().strip('"') for c in request.query["columns"].split(",")]
        else:
            columns = list(payload[0]) if payload else []
            if any(set(r) != set(columns) for r in payload):
                raise RestError(400, "PGRST102", "All object keys must match")
        self._known_columns(table, columns)
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        target = sql.SQL("INSERT INTO {} AS {}").format(table.qualified, sql.Identifier(table.name))
        params: list[Any]
        if not columns:
            rows = sql.SQL(" SELECT FROM json_populate_recordset(NULL::{}, %s::json)").format(
                table.qualified
            )
            params = [json.dumps(payload)]
        elif prefer.get("missing") == "default":
            rows, params = self._values_with_defaults(table, columns, payload)
            rows = sql.SQL(" ({})").format(names) + rows
        else:
            rows = sql.SQL(
                " ({}) SELECT {} FROM json_populate_recordset(NULL::{}, %s::json)"
            ).format(names, names, table.qualified)
            params = [json.dumps(payload)]
        conflict = self._on_conflict(table, columns, request, prefer.get("resolution"))
        return self._write(table, target + rows + conflict, params, projection, representation)

    @staticmethod
    def _values_with_defaults(
        table: TableInfo, columns: list[str], payload: list[Row]
    ) -> tuple[sql.Composable, list[Any]]:
        """VALUES rows where a key an object lacks takes the column default."""
        params: list[Any] = []
        tuples: list[sql.Composable] = []
        for row in payload:
            cells: list[sql.Composable] = []
            for name in columns:
                if name not in row:
                    cells.append(sql.SQL("DEFAULT"))
                    continue
                cells.append(
                    sql.SQL("(json_populate_record(NULL::{}, %s::json)).{}").format(
                        table.qualified, sql.Identifier(name)
                    )
                )
                params.append(json.dumps({name: row[name]}))
            tuples.append(sql.SQL("({})").format(sql.SQL(", ").join(cells)))
        return sql.SQL(" VALUES ") + sql.SQL(", ").join(tuples), params

    @staticmethod
    def _on_conflict(
        table: TableInfo, columns: list[str], request: web.Request, resolution: str | None
    ) -> sql.Composable:
        if resolution not in ("merge-duplicates", "ignore-duplicates"):
            return sql.SQL("")
        spec = request.query.get("on_conflict")
        target = (
            [c.strip().strip('"') for c in spec.split(",")] if spec else list(table.primary_key)
        )
        on = (
            sql.SQL(" ON CONFLICT ({})").format(sql.SQL(", ").join(map(sql.Identifier, target)))
            if target
            else sql.SQL(" ON CONFLICT")
        )
        if resolution == "ignore-duplicates" or not columns:
            return on + sql.SQL(" DO NOTHING")
        updates = sql.SQL(", ").join(
            sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c))
            for c in columns
        )
        return on + sql.SQL(" DO UPDATE SET ") + updates

    def _update(
        self,
        table: TableInfo,
        projection: sql.Composable,
        where: Where,
        body: Row,
        representation: bool,
    ) -> Statement:
        columns = list(body)
        self._known_columns(table, columns)
        if not columns:
            # PostgREST answers an empty PATCH without touching a row.
            return self._select_nothing(table, projection)
        sets = sql.SQL(", ").join(
            sql.SQL("{} = pgrst_body.{}").format(sql.Identifier(c), sql.Identifier(c))
            for c in columns
        )
        statement = sql.SQL(
            "UPDATE {} AS {} SET {} FROM json_populate_record(NULL::{}, %s::json) AS pgrst_body"
            " WHERE {}"
        ).format(table.qualified, sql.Identifier(table.name), sets, table.qualified, where.sql)
        return self._write(
            table, statement, [json.dumps(body), *where.params], projection, representation
        )

    def _delete(
        self, table: TableInfo, projection: sql.Composable, where: Where, representation: bool
    ) -> Statement:
        statement = sql.SQL("DELETE FROM {} AS {} WHERE {}").format(
            table.qualified, sql.Identifier(table.name), where.sql
        )
        return self._write(table, statement, list(where.params), projection, representation)

    @staticmethod
    def _write(
        table: TableInfo,
        statement: sql.Composable,
        params: list[Any],
        projection: sql.Composable,
        representation: bool,
    ) -> Statement:
        """The write alone (``return=minimal``: no RETURNING, so no SELECT policy
        applies), or wrapped to hand back the written rows through ``select``."""
        if not representation:
            return Statement(statement, params, False)
        relation = sql.Identifier(table.name)
        query = sql.SQL(
            "WITH pgrst_source AS ({} RETURNING {}.*)"
            " SELECT NULL::bigint, {} FROM (SELECT {} FROM pgrst_source AS {}) _pgrst_t"
        ).format(statement, relation, _AGGREGATE, projection, relation)
        return Statement(query, params, True)

    @staticmethod
    def _select_nothing(table: TableInfo, projection: sql.Composable) -> Statement:
        relation = sql.Identifier(table.name)
        query = sql.SQL(
            "SELECT NULL::bigint, {} FROM (SELECT {} FROM {} AS {} WHERE false) _pgrst_t"
        ).format(_AGGREGATE, projection, table.qualified, relation)
        return Statement(query, [], True)

    @staticmethod
    def _known_columns(table: TableInfo, columns: Iterable[str]) -> None:
        for name in columns:
            if name not in table.columns:
                raise RestError(
                    400,
                    "PGRST204",
                    f"Could not find the '{name}' column of '{table.name}' in the schema cache",
                )

    # -- request parts ------------------------------------------------------

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
        status: int,
        representation: bool,
        rows: int,
        total: int | None,
        offset: int,
        body_json: str,
        first: str | None,
    ) -> web.Response:
        span = f"{offset}-{offset + rows - 1}" if rows else "*"
        headers = {"Content-Range": f"{span}/{'*' if total is None else total}"}
        method = request.method
        if method in ("GET", "HEAD") and total is not None:
            if offset > total:
                raise RestError(
                    416,
                    "PGRST103",
                    "Requested range not satisfiable",
                    f"An offset of {offset} was requested, but there are only {total} rows.",
                )
            if rows < total:
                status = 206
        if method in ("POST", "PATCH", "DELETE") and not representation:
            return web.Response(status=201 if method == "POST" else 204, headers=headers)
        if request.headers.get("Accept", "").startswith("application/vnd.pgrst.object+json"):
            if rows != 1:
                return web.json_response(
                    {
                        "code": "PGRST116",
                        "details": f"The result contains {rows} rows",
                        "hint": None,
                        "message": "Cannot coerce the result to a single JSON object",
                    },
                    status=406,
                )
            body_json = first or "null"
        if method == "HEAD":
            return web.Response(status=status, headers=headers, content_type="application/json")
        return web.Response(
            status=status, headers=headers, text=body_json, content_type="application/json"
        )
