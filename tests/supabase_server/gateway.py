"""Gateway mode: forward /storage/v1/* to a real Supabase Storage server, as Kong does.

The prefix is stripped and ``X-Forwarded-Prefix: /storage/v1`` plus
``X-Forwarded-Host/Port/Proto`` are set, so the real server builds TUS
``Location`` URLs that point back at the gateway. Bodies are streamed both
ways; a client that goes away mid-body aborts the upstream request too, so
the real server sees the same interrupted chunk the client sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from yarl import URL

PREFIX = "/storage/v1"
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the gateway sets itself.
_REQUEST_DROP = frozenset(
    h.lower()
    for h in (
        "Host",
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "X-Forwarded-For",
        "X-Forwarded-Host",
        "X-Forwarded-Port",
        "X-Forwarded-Proto",
        "X-Forwarded-Prefix",
    )
)
_RESPONSE_DROP = frozenset(
    h.lower()
    for h in ("Connection", "Keep-Alive", "Transfer-Encoding", "Upgrade", "Trailer", "Date")
)
_CHUNK = 256 * 1024


class StorageGateway:
    """Streams requests to ``upstream`` (the real server's root URL)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                connector=aiohttp.TCPConnector(limit=0),
            )
        return self._session

    async def forward(self, request: web.Request) -> web.StreamResponse:
        tail = request.raw_path[len(PREFIX) :] or "/"
        url = URL(self.upstream + tail, encoded=True)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _REQUEST_DROP}
        host, _, port = (request.host or "").partition(":")
        headers.update(
            {
                "X-Forwarded-Prefix": PREFIX,
                "X-Forwarded-Host": host,
                "X-Forwarded-Port": port or "80",
                "X-Forwarded-Proto": request.scheme,
                "X-Forwarded-For": request.remote or "127.0.0.1",
            }
        )
        body = _body(request) if request.body_exists else None
        try:
            return await self._relay(request, url, headers, body)
        except aiohttp.ClientConnectorError:  # the real server is down: Kong's answer
            return web.json_response(
                {"message": "An invalid response was received from the upstream server"},
                status=502,
            )

    async def _relay(
        self,
        request: web.Request,
        url: URL,
        headers: dict[str, str],
        body: AsyncIterator[bytes] | None,
    ) -> web.StreamResponse:
        async with self._client().request(
            request.method, url, headers=headers, data=body, allow_redirects=False
        ) as upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for name, value in upstream.headers.items():
                if name.lower() not in _RESPONSE_DROP:
                    response.headers.add(name, value)
            await response.prepare(request)
            if request.method != "HEAD":
                async for chunk in upstream.content.iter_chunked(_CHUNK):
                    await response.write(chunk)
            await response.write_eof()
            return response


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; raises if the client goes away mid-body."""
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            return
        yield chunk
