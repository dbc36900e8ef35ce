"""The console's web application (Starlette): login, the page, its event stream, the actions.

* Sessions live in a cookie signed with itsdangerous (Starlette's ``SessionMiddleware``;
  ``SameSite=Strict``, ``HttpOnly``, ``Secure`` when served over TLS); a session holds the user's
  name, role and CSRF token, nothing else.
* Every state-changing request (login, logout, each alarm action) must carry the session's CSRF
  token (form field ``csrf`` or header ``X-CSRF-Token``); a missing or wrong one is refused with
  403 and written to the journal.
* An action is sent as the logged-in user: the page cannot name anyone else. Viewers are refused.
  Every action and every refusal is in the journal the pages show.
* ``GET /events`` is a server-sent event stream: a snapshot of the board first, then its changes.
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import logging
import math
import secrets
import time
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from console._board import AlarmBoard
from console._link import BrokerLink, BrokerUnavailable, Hub, frame
from console._users import UserFile, UserFileError
from rules import MAX_SHELVE_MINUTES

__all__ = ["ACTIONS", "REASON_REQUIRED", "create_app"]

log = logging.getLogger(__name__)

#: The alarm commands of the MQTT contract (docs/rules.md, "Commands over MQTT") the page can send.
ACTIONS: Final = ("ack", "shelve", "unshelve", "out_of_service", "return_to_service")
#: Actions that must say why (the reason travels in the command and is journaled).
REASON_REQUIRED: Final = frozenset({"shelve", "out_of_service", "return_to_service"})
MAX_REASON_CHARS: Final = 200
MAX_FORM_BYTES: Final = 4096
SESSION_HOURS: Final = 12
KEEPALIVE_S: Final = 15.0

_STATIC = resources.files("console") / "static"


def _page(name: str, **values: str) -> str:
    text = (_STATIC / name).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return text


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def create_app(
    board: AlarmBoard,
    hub: Hub,
    link: BrokerLink,
    users: UserFile,
    *,
    secret: str,
    https_only: bool = False,
    command_timeout: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The console's ASGI application over a board, its hub and its broker link."""

    def journal(entry: dict[str, Any]) -> None:
        entry = {"ts": round(clock() * 1000), "source": "console", **entry}
        hub.send([board.note(entry)])

    def csrf_ok(request: Request, token: str | None) -> bool:
        expected = request.session.get("csrf")
        return (
            isinstance(expected, str)
            and isinstance(token, str)
            and hmac.compare_digest(expected.encode(), token.encode())
        )

    def new_csrf(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str):
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    async def form(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return {}
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
        return {k: v[0] for k, v in fields.items()}

    async def login_page(request: Request) -> Response:
        if request.session.get("user"):
            return RedirectResponse("/", 303)
        return HTMLResponse(_page("login.html", csrf=new_csrf(request), error=""))

    async def login(request: Request) -> Response:
        fields = await form(request)
        name = fields.get("username", "")[:64]

        def again(error: str, status: int) -> Response:
            text = _page("login.html", csrf=new_csrf(request), error=error)
            return HTMLResponse(text, status)

        if not csrf_ok(request, fields.get("csrf")):
            refusal = {"action": "login", "result": "refused", "user": name or None}
            journal({**refusal, "error": "CSRF token missing or wrong"})
            return again("The form expired; please log in again.", 403)
        try:
            user = await asyncio.to_thread(users.verify, name, fields.get("password", ""))
        except UserFileError as exc:
            log.error("%s", exc)
            return again("The users file cannot be read; see the console's log.", 500)
        if user is None:
            refusal = {"action": "login", "result": "refused", "user": name or None}
            journal({**refusal, "error": "wrong user name or password"})
            return again("Wrong user name or password.", 401)
        request.session.clear()
        request.session.update(
            {"user": user.name, "role": user.role, "csrf": secrets.token_urlsafe(32)}
        )
        journal({"user": user.name, "action": "login", "result": "done", "role": user.role})
        return RedirectResponse("/", 303)

    async def logout(request: Request) -> Response:
        fields = await form(request)
        if not csrf_ok(request, fields.get("csrf")):
            return PlainTextResponse("CSRF token missing or wrong", 403)
        if request.session.get("user"):
            journal({"user": request.session["user"], "action": "logout", "result": "done"})
        request.session.clear()
        return RedirectResponse("/login", 303)

    async def index(request: Request) -> Response:
        user = request.session.get("user")
        if not user:
            return RedirectResponse("/login", 303)
        return HTMLResponse(
            _page(
                "index.html",
                user=str(user),
                role=str(request.session.get("role", "viewer")),
                csrf=new_csrf(request),
                max_shelve=str(MAX_SHELVE_MINUTES),
            )
        )

    async def events(request: Request) -> Response:
        if not request.session.get("user"):
            return PlainTextResponse("log in first", 401)
        queue = hub.open()
        first = frame([board.snapshot()])  # taken with no await after open(): nothing is missed

        async def stream() -> AsyncIterator[str]:
            try:
                yield first
                while True:
                    try:
                        async with asyncio.timeout(KEEPALIVE_S):
                            text = await queue.get()
                    except TimeoutError:
                        yield ": keepalive\n\n"
                        continue
                    if text is None:
                        return
                    yield text
            finally:
                hub.close(queue)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def action(request: Request) -> Response:
        verb = request.path_params["verb"]
        user = request.session.get("user")
        entry: dict[str, Any] = {"user": user, "action": verb}
        try:
            if not user:
                raise _Refused(401, "not logged in")
            if not csrf_ok(request, request.headers.get("x-csrf-token")):
                raise _Refused(403, "CSRF token missing or wrong")
            if request.session.get("role") != "operator":
                raise _Refused(403, f"role {request.session.get('role')!r} may not act")
            if verb not in ACTIONS:
                raise _Refused(404, f"unknown action {verb!r}")
            body = await _json_body(request)
            site, alarm_id = body.get("site"), body.get("id")
            entry.update(site=site, id=alarm_id)
            command = _command(board, verb, body, str(user))
            entry.update({k: command[k] for k in ("minutes", "reason") if k in command})
            try:
                reply = await link.command(str(site), verb, command, timeout=command_timeout)
            except BrokerUnavailable as exc:
                raise _Refused(503, str(exc)) from None
            except TimeoutError:
                late = f"no reply from the gateway of {site} within {command_timeout:g} s"
                raise _Refused(504, late) from None
        except _Refused as exc:
            journal({**entry, "result": "refused", "error": exc.reason})
            return JSONResponse({"ok": False, "error": exc.reason}, exc.status)
        ok = reply.get("ok") is True
        error = None if ok else str(reply.get("error") or "refused by the gateway")
        journal({**entry, "result": "done" if ok else "refused", "error": error})
        return JSONResponse({"ok": ok, "error": error}, 200 if ok else 409)

    routes = [
        Route("/", index),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/events", events),
        Route("/api/alarm/{verb}", action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(_STATIC)), name="static"),
    ]
    middleware = [
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="hazardgw_console",
            max_age=SESSION_HOURS * 3600,
            same_site="strict",
            https_only=https_only,
        )
    ]
    return Starlette(routes=routes, middleware=middleware)


async def _json_body(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise _Refused(413, f"request larger than {MAX_FORM_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise _Refused(400, "the request is not JSON") from None
    if not isinstance(doc, dict):
        raise _Refused(400, "the request must be a JSON object")
    return doc


def _command(board: AlarmBoard, verb: str, body: dict[str, Any], user: str) -> dict[str, Any]:
    """The MQTT command for ``verb``; the user is the session's, whatever the page sent."""
    site, alarm_id = body.get("site"), body.get("id")
    if not isinstance(site, str) or not isinstance(alarm_id, str):
        raise _Refused(400, "'site' and 'id' must be strings")
    if board.get("alarm", f"{site}/{alarm_id}") is None:
        raise _Refused(404, f"no active alarm {alarm_id!r} at site {site!r}")
    command: dict[str, Any] = {"id": alarm_id, "user": user}
    if verb == "shelve":
        minutes = body.get("minutes")
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int | float)
            or not math.isfinite(minutes)
            or not 0 < minutes <= MAX_SHELVE_MINUTES
        ):
            raise _Refused(400, f"'minutes' must be a number in (0, {MAX_SHELVE_MINUTES}]")
        command["minutes"] = minutes
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise _Refused(400, "'reason' must be text")
    reason = (reason or "").strip()
    if verb in REASON_REQUIRED and not reason:
        raise _Refused(400, f"{verb.replace('_', ' ')} needs a reason")
    if len(reason) > MAX_REASON_CHARS:
        raise _Refused(400, f"'reason' is longer than {MAX_REASON_CHARS} characters")
    if reason:
        command["reason"] = reason
    return command
