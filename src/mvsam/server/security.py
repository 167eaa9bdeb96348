"""Guards of a web app that runs on people's laptops.

- Host header check (Starlette's ``TrustedHostMiddleware``, set up in ``app.py``) against DNS rebinding.
- :class:`AccessGuard`: a random token on every request when the server listens beyond loopback, and
  same-origin, JSON-only writes, so another web page in the user's browser cannot post clicks (no CORS).
- A request body limit (413).
- :func:`inside`: the files served are the scene's images and the app's static files only; a resolved
  path (symlinks followed) must stay inside an allowed folder.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MAX_BODY_BYTES = 64 * 1024
TOKEN_HEADER = "x-mvsam-token"
TOKEN_COOKIE = "mvsam_token"
SAFE_HEADERS = (  # no sniffing, no framing by other sites, no token leaking through the Referer header
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> list[str]:
    """Host header values accepted for a server bound to ``host`` (ports are ignored by the check)."""
    hosts = ["127.0.0.1", "localhost", "[::1]", "::1"]
    if not is_loopback(host):
        hosts.append("*" if host in ("0.0.0.0", "::") else host)
    return hosts


def new_token() -> str:
    return secrets.token_urlsafe(24)


def inside(path: Path, folders: list[Path]) -> bool:
    """Whether ``path``, with every symlink resolved, is a file inside one of ``folders``."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return False
    return real.is_file() and any(real.is_relative_to(folder.resolve()) for folder in folders)


async def _send_json(send, status: int, error: str, headers: list | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


class AccessGuard:
    """ASGI middleware: body size limit, same-origin JSON writes, and the access token when one is set.

    The token may come as the ``x-mvsam-token`` header, the ``token`` query parameter (the URL the
    server prints) or the cookie set when the page is opened with it.
    """

    def __init__(self, app, token: str | None = None, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token
        self.max_body = max_body

    def _token_ok(self, headers: dict[str, str], query: str) -> tuple[bool, bool]:
        """(accepted, came from the query string)."""
        if self.token is None:
            return True, False
        candidates = [headers.get(TOKEN_HEADER, "")]
        for part in headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == TOKEN_COOKIE:
                candidates.append(value)
        from_query = parse_qs(query).get("token", [""])[0]
        for candidate in candidates:
            if candidate and secrets.compare_digest(candidate.encode(), self.token.encode()):
                return True, False
        if from_query and secrets.compare_digest(from_query.encode(), self.token.encode()):
            return True, True
        return False, False

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        accepted, from_query = self._token_ok(headers, scope.get("query_string", b"").decode("latin-1"))
        if not accepted:
            await _send_json(send, 401, "this server needs its access token (see the URL it printed)")
            return
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != headers.get("host"):
                await _send_json(send, 403, f"cross-origin request from {origin} refused")
                return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _send_json(send, 413, f"request body larger than {self.max_body} bytes")
            return
        body = b""
        more = method not in ("GET", "HEAD")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_body:
                await _send_json(send, 413, f"request body larger than {self.max_body} bytes")
                return
            more = message.get("more_body", False)
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if body and content_type != "application/json":
            await _send_json(send, 415, "send the request body as application/json")
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def send_guarded(message):
            if message["type"] == "http.response.start":
                extra = list(SAFE_HEADERS)
                if from_query:
                    cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                    extra.append((b"set-cookie", cookie.encode()))
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        await self.app(scope, replay, send_guarded)
