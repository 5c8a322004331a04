"""PostgreSQL errors as PostgREST answers them: HTTP status and JSON body.

The status table is PostgREST's (``pgErrorStatus`` in its Error module):
class 08 and 53 → 503, 23503/23505 → 409, 25006 → 405, 42883/42P01 → 404,
42501 → 403 for a signed-in caller and 401 for anon, P0001 → 400, the
server-side classes (09 25 2D 38 39 3B 40 54 55 57 58 F0 HV P0 XX, 42P17)
→ 500, anything else → 400. The body is ``{code, message, details, hint}``
with the SQLSTATE as code.
"""

from __future__ import annotations

from typing import Any

import psycopg

_EXACT = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "42883": 404,
    "42P01": 404,
    "42P17": 500,
    "P0001": 400,
}
_BY_CLASS = {
    "08": 503,
    "53": 503,
    "0L": 403,
    "0P": 403,
    "28": 403,
    **dict.fromkeys(
        ("09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "P0", "XX"),
        500,
    ),
}


def status_for(sqlstate: str, *, signed_in: bool) -> int:
    if sqlstate == "42501":
        return 403 if signed_in else 401
    if sqlstate in _EXACT:
        return _EXACT[sqlstate]
    return _BY_CLASS.get(sqlstate[:2], 400)


def error_body(error: psycopg.Error) -> dict[str, Any]:
    diag = error.diag
    return {
        "code": error.sqlstate or "XX000",
        "details": diag.message_detail,
        "hint": diag.message_hint,
        "message": diag.message_primary or str(error),
    }
