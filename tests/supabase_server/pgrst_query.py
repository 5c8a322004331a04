"""PostgREST's URL grammar turned into parameterised SQL (psycopg ``sql`` objects).

Covers what postgrest-py sends: ``select`` (``*``, ``col``, ``alias:col``),
horizontal filters (eq neq gt gte lt lte like ilike match imatch is
isdistinct in cs cd ov, each with ``not.``), logic trees ``or=(...)`` /
``and=(...)`` (nested, negated), ``order`` and ``limit``/``offset``.
Names become :class:`psycopg.sql.Identifier`, values query parameters sent
as *unknown*-typed text, so PostgreSQL casts them to the column's type and
its own errors (22P02 …) come back, as with PostgREST.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from psycopg import sql

RESERVED = {"select", "order", "limit", "offset", "on_conflict", "columns", "apikey"}
_COMPARE = {
    "eq": "=",
    "neq": "<>",
    "gt": ">",
    "gte": ">=",
    "lt": "<",
    "lte": "<=",
    "like": "LIKE",
    "ilike": "ILIKE",
    "match": "~",
    "imatch": "~*",
    "isdistinct": "IS DISTINCT FROM",
    "cs": "@>",
    "cd": "<@",
    "ov": "&&",
}
_IS = {
    "null": "IS NULL",
    "not_null": "IS NOT NULL",
    "true": "IS TRUE",
    "false": "IS FALSE",
    "unknown": "IS UNKNOWN",
}


class RestError(Exception):
    """An answer PostgREST gives without running SQL: HTTP status and JSON body."""

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


def parse_error(message: str, details: str | None = None) -> RestError:
    return RestError(400, "PGRST100", message, details)


def split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, escape = 0, False, False
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


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


@dataclass
class Where:
    """A boolean SQL expression and its parameters, in order."""

    sql: sql.Composable
    params: list[str] = field(default_factory=list)


class Translator:
    """Builds SQL pieces for one table, named ``relation`` in the FROM clause."""

    def __init__(self, relation: str) -> None:
        self.relation = relation

    def column(self, name: str) -> sql.Composable:
        name = unquote(name.strip())
        if not name:
            raise parse_error("failed to parse: empty column name")
        return sql.Identifier(self.relation, name)

    # -- filters ----------------------------------------------------------

    def condition(self, name: str, expression: str, *, in_tree: bool = False) -> Where:
        """``name=op.value``; inside a logic tree a value may be double-quoted."""
        negate = expression.startswith("not.")
        if negate:
            expression = expression[4:]
        op, dot, raw = expression.partition(".")
        if not dot:
            raise parse_error(f"failed to parse filter ({expression})", "unexpected end of input")
        if in_tree:
            raw = unquote(raw)
        where = self._operator(self.column(name), op, raw)
        if negate:
            where.sql = sql.SQL("NOT ({})").format(where.sql)
        return where

    def _operator(self, column: sql.Composable, op: str, raw: str) -> Where:
        if op in ("like", "ilike"):
            return Where(
                sql.SQL("{} {} %s").format(column, sql.SQL(_COMPARE[op])), [raw.replace("*", "%")]
            )
        if op in _COMPARE:
            return Where(sql.SQL("{} {} %s").format(column, sql.SQL(_COMPARE[op])), [raw])
        if op == "is":
            test = _IS.get(raw.lower())
            if test is None:
                raise parse_error(f"failed to parse filter (is.{raw})")
            return Where(sql.SQL("{} {}").format(column, sql.SQL(test)))
        if op == "in":
            if not (raw.startswith("(") and raw.endswith(")")):
                raise parse_error(f"failed to parse filter (in.{raw})")
            items = [unquote(i) for i in split_top(raw[1:-1])] if raw[1:-1] else []
            if not items:
                return Where(sql.SQL("false"))
            placeholders = sql.SQL(", ").join(sql.Placeholder() * len(items))
            return Where(sql.SQL("{} IN ({})").format(column, placeholders), items)
        raise parse_error(f"failed to parse filter ({op}.{raw})")

    def logic(self, expression: str, *, conjunction: bool, negate: bool = False) -> Where:
        if not (expression.startswith("(") and expression.endswith(")")):
            raise parse_error(f"failed to parse logic tree ({expression})")
        items = [self._logic_item(item) for item in split_top(expression[1:-1])]
        joined = sql.SQL(" AND " if conjunction else " OR ").join(
            sql.SQL("({})").format(w.sql) for w in items
        )
        params = [p for w in items for p in w.params]
        template = "NOT ({})" if negate else "({})"
        return Where(sql.SQL(template).format(joined), params)

    def _logic_item(self, item: str) -> Where:
        match = re.fullmatch(r"(not\.)?(and|or)(\(.*\))", item, re.DOTALL)
        if match:
            return self.logic(match[3], conjunction=match[2] == "and", negate=bool(match[1]))
        name, _, expression = item.partition(".")
        return self.condition(name, expression, in_tree=True)

    def where(self, params: Iterable[tuple[str, str]]) -> Where | None:
        """Every filter of the query string ANDed, or None when there is none."""
        parts: list[Where] = []
        for key, value in params:
            if key in RESERVED:
                continue
            logic = re.fullmatch(r"(not\.)?(and|or)", key)
            if logic:
                parts.append(
                    self.logic(value, conjunction=logic[2] == "and", negate=bool(logic[1]))
                )
            else:
                parts.append(self.condition(key, value))
        if not parts:
            return None
        return Where(
            sql.SQL(" AND ").join(sql.SQL("({})").format(w.sql) for w in parts),
            [p for w in parts for p in w.params],
        )

    # -- output -----------------------------------------------------------

    def projection(self, select: str | None, table: str) -> sql.Composable:
        """The select list: ``*``, columns, ``alias:column``."""
        if not select or select.strip() == "*":
            return sql.SQL("{}.*").format(sql.Identifier(self.relation))
        items: list[sql.Composable] = []
        for item in split_top(select):
            item = item.strip()
            if item == "*":
                items.append(sql.SQL("{}.*").format(sql.Identifier(self.relation)))
                continue
            if "(" in item:
                raise RestError(
                    400,
                    "PGRST200",
                    f"Could not find a relationship between '{table}' and "
                    f"'{item.split('(')[0].split(':')[-1]}' in the schema cache",
                )
            if "::" in item or "->" in item:
                raise parse_error(f"failed to parse select parameter ({select})")
            alias, _, name = item.rpartition(":")
            items.append(
                sql.SQL("{} AS {}").format(
                    self.column(name), sql.Identifier(unquote(alias or name).strip())
                )
            )
        return sql.SQL(", ").join(items)

    def order(self, spec: str | None) -> sql.Composable:
        """``ORDER BY …`` for ``col.desc.nullslast,col2``, or nothing."""
        if not spec:
            return sql.SQL("")
        terms: list[sql.Composable] = []
        for term in split_top(spec):
            name, *modifiers = term.split(".")
            words = [self.column(name)]
            for modifier in modifiers:
                word = {
                    "asc": "ASC",
                    "desc": "DESC",
                    "nullsfirst": "NULLS FIRST",
                    "nullslast": "NULLS LAST",
                }.get(modifier)
                if word is None:
                    raise parse_error(f"failed to parse order ({spec})")
                words.append(sql.SQL(word))
            terms.append(sql.SQL(" ").join(words))
        return sql.SQL(" ORDER BY ") + sql.SQL(", ").join(terms)
