"""The FastAPI application factory and the HTML pages (login, worklist, viewer, admin, agreement)."""
from __future__ import annotations

import json
import os
import secrets
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.engine import make_url
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nervemuscle.protocol import load_protocol
from nervemuscle.reader import auth
from nervemuscle.reader.api import (check_csrf, current_user, get_db, login_session, progress, require_admin,
                                    router, session_agreement)
from nervemuscle.reader.db import default_url, in_memory_sqlite, make_engine, migrate, session_factory
from nervemuscle.reader.display import prune_cache
from nervemuscle.reader.models import LoginSession, Series, User

PACKAGE = resources.files("nervemuscle.reader")


@dataclass
class ReaderSettings:
    """Configuration of one reader-app instance.

    Parameters
    ----------
    db_url : str
        SQLAlchemy URL; default SQLite ``./nervemuscle-reader.db``; ``postgresql+psycopg://...`` for PostgreSQL.
    data_root : Path
        Exams can only be imported from inside this folder.
    protocol_path : Path, optional
        Grading protocol override (default: the shipped protocol).
    max_upload_bytes : int
        Largest request body accepted (413 above).
    secure_cookies : bool
        Mark cookies ``Secure`` (set when served over HTTPS).
    cache_dir : Path, optional
        Where the viewer's display copies of the series are kept (default: ``nervemuscle-reader-cache`` next
        to a SQLite database, else in the working folder).
    """

    db_url: str = field(default_factory=default_url)
    data_root: Path = field(default_factory=Path.cwd)
    protocol_path: Path | None = None
    max_upload_bytes: int = 2 * 1024 * 1024
    secure_cookies: bool = False
    cache_dir: Path | None = None

    def to_json(self) -> str:
        """These settings as JSON (handed to the worker processes of ``nervemuscle serve --workers``)."""
        return json.dumps({"db_url": self.db_url, "data_root": str(self.data_root),
                           "protocol_path": None if self.protocol_path is None else str(self.protocol_path),
                           "max_upload_bytes": self.max_upload_bytes, "secure_cookies": self.secure_cookies,
                           "cache_dir": None if self.cache_dir is None else str(self.cache_dir)})

    @classmethod
    def from_json(cls, text: str) -> ReaderSettings:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        paths = {k: None if d[k] is None else Path(d[k]) for k in ("data_root", "protocol_path", "cache_dir")}
        return cls(db_url=d["db_url"], max_upload_bytes=d["max_upload_bytes"], secure_cookies=d["secure_cookies"],
                   **paths)

    def display_cache(self) -> Path:
        """The display-copy folder (:attr:`cache_dir` or its default)."""
        if self.cache_dir is not None:
            return Path(self.cache_dir)
        url = make_url(self.db_url)
        if url.get_backend_name() == "sqlite" and not in_memory_sqlite(self.db_url):
            return Path(url.database).resolve().parent / "nervemuscle-reader-cache"
        return Path.cwd() / "nervemuscle-reader-cache"


class BodyLimit:
    """ASGI middleware: refuse request bodies above ``limit`` bytes with 413 (declared or streamed)."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await JSONResponse({"detail": f"request body larger than {self.limit} bytes"}, 413)(
                scope, receive, send)
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise HTTPException(413, f"request body larger than {self.limit} bytes")
            return message

        return await self.app(scope, limited, send)


class SecurityHeaders:
    """ASGI middleware: ``nosniff``, no framing, same-origin referrer and a Content-Security-Policy on every
    response, and ``Cache-Control: no-store`` on JSON and HTML (reads, grades, CSRF tokens must not stay in
    a browser or proxy cache); each unless the response already sets it.

    The policy allows scripts only from this server (no inline script; WebAssembly for Niivue), so injected
    markup cannot run code. Plain ASGI rather than ``@app.middleware("http")``, whose per-request task and
    stream cost more than a small API response.
    """

    CSP = (b"default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
           b"img-src 'self' data: blob:; connect-src 'self' blob: data:; worker-src 'self' blob:; "
           b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
    HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
               (b"referrer-policy", b"same-origin"), (b"content-security-policy", CSP))
    NO_STORE_TYPES = (b"application/json", b"text/html")

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = dict((name.lower(), value) for name, value in message.get("headers", []))
                extra = [(k, v) for k, v in self.HEADERS if k not in headers]
                if b"cache-control" not in headers and \
                        headers.get(b"content-type", b"").startswith(self.NO_STORE_TYPES):
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        return await self.app(scope, receive, send_with_headers)


#: Environment variable carrying :meth:`ReaderSettings.to_json` to the worker processes.
SETTINGS_ENV = "NERVEMUSCLE_READER_SETTINGS"


#: Environment variable carrying the process id of ``serve --workers``'s supervisor to its workers.
SUPERVISOR_ENV = "NERVEMUSCLE_READER_SUPERVISOR"


def exit_with_supervisor(supervisor_pid: int) -> None:
    """Have the kernel send this worker SIGTERM when its parent (the supervisor) dies, even by SIGKILL, so no
    orphaned worker keeps the port; exit at once if the supervisor is already gone (Linux ``PR_SET_PDEATHSIG``;
    elsewhere nothing is done)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != supervisor_pid:
        os._exit(0)


def create_app_from_env() -> FastAPI:
    """App factory for several server processes (``uvicorn --factory``): settings from :data:`SETTINGS_ENV`;
    the worker ends with its supervisor (:func:`exit_with_supervisor`)."""
    if os.environ.get(SUPERVISOR_ENV, "").isdigit():
        exit_with_supervisor(int(os.environ[SUPERVISOR_ENV]))
    return create_app(ReaderSettings.from_json(os.environ[SETTINGS_ENV]))


def create_app(settings: ReaderSettings | None = None) -> FastAPI:
    """Build the app: migrate the database to the newest schema, mount static files, API and pages."""
    settings = settings or ReaderSettings()
    engine = make_engine(settings.db_url)
    migrate(engine)
    app = FastAPI(title="nervemuscle reader", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.read_sessions = (session_factory(make_engine(settings.db_url, writer=False))
                               if engine.dialect.name == "sqlite" else app.state.sessions)
    app.state.protocol = load_protocol(settings.protocol_path)
    app.state.display_cache = settings.display_cache()
    with app.state.read_sessions() as db:
        prune_cache(app.state.display_cache, db.scalars(select(Series.path)))
    app.state.findings_schema = json.loads(
        resources.files("nervemuscle.schema").joinpath("findings.schema.json").read_text())
    templates = Jinja2Templates(directory=str(PACKAGE.joinpath("templates")))
    app.add_middleware(BodyLimit, limit=settings.max_upload_bytes)
    app.mount("/static", StaticFiles(directory=str(PACKAGE.joinpath("static"))), name="static")
    app.include_router(router)

    app.add_middleware(SecurityHeaders)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if request.url.path.startswith("/api") or request.method != "GET":
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        if exc.status_code == 401:
            return RedirectResponse("/login", 303)
        return HTMLResponse(f"<h1>{exc.status_code}</h1><p>{exc.detail}</p>", exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"detail": f"{where}: {first.get('msg', 'invalid request')}"}, 422)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def set_cookie(response: Response, key: str, value: str, max_age: int) -> None:
        response.set_cookie(key, value, max_age=max_age, httponly=True, samesite="strict",
                            secure=settings.secure_cookies, path="/")

    def login_form(request: Request, error: str | None = None, status: int = 200) -> Response:
        token = secrets.token_urlsafe(32)
        response = page(request, "login.html", status, csrf_token=token, error=error)
        set_cookie(response, auth.LOGIN_CSRF_COOKIE, token, 3600)
        return response

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        return login_form(request)

    @app.post("/login")
    def login(request: Request, username: str = Form(max_length=64), password: str = Form(max_length=1024),
              csrf_token: str = Form(""), db=Depends(get_db, scope="function")) -> Response:  # noqa: ANN001
        if not auth.tokens_match(request.cookies.get(auth.LOGIN_CSRF_COOKIE), csrf_token):
            raise HTTPException(403, "missing or wrong CSRF token (reload the login page)")
        client = request.client.host if request.client else "unknown"
        if auth.too_many_failures(db, username, client):
            response = login_form(request, "Too many failed logins: wait a minute.", 429)
            response.headers["Retry-After"] = "60"
            return response
        user = auth.authenticate(db, username, password, client)
        if user is None:
            return login_form(request, "Wrong user name or password.", 401)
        token = auth.open_session(db, user)
        response = RedirectResponse("/admin" if user.role == "admin" else "/worklist", 303)
        set_cookie(response, auth.SESSION_COOKIE, token, int(auth.SESSION_LIFETIME.total_seconds()))
        response.delete_cookie(auth.LOGIN_CSRF_COOKIE, path="/")
        return response

    @app.post("/logout", dependencies=[Depends(check_csrf)])
    def logout(request: Request, db=Depends(get_db, scope="function")) -> Response:  # noqa: ANN001
        auth.close_session(db, request.cookies.get(auth.SESSION_COOKIE))
        response = RedirectResponse("/login", 303)
        response.delete_cookie(auth.SESSION_COOKIE, path="/")
        return response

    @app.get("/")
    def home(user: User = Depends(current_user)) -> Response:
        return RedirectResponse("/admin" if user.role == "admin" else "/worklist", 303)

    @app.get("/worklist", response_class=HTMLResponse)
    def worklist_page(request: Request, session: LoginSession = Depends(login_session)) -> Response:
        return page(request, "worklist.html", user=session.user, csrf_token=session.csrf_token)

    @app.get("/read/{read_id}", response_class=HTMLResponse)
    def read_page(request: Request, read_id: int, session: LoginSession = Depends(login_session)) -> Response:
        return page(request, "read.html", user=session.user, csrf_token=session.csrf_token, read_id=read_id)

    @app.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request, session: LoginSession = Depends(login_session),
                   _: User = Depends(require_admin)) -> Response:
        return page(request, "admin.html", user=session.user, csrf_token=session.csrf_token,
                    data_root=str(settings.data_root))

    @app.get("/admin/sessions/{session_id}", response_class=HTMLResponse)
    def session_page(request: Request, session_id: int, session: LoginSession = Depends(login_session),
                     admin: User = Depends(require_admin), db=Depends(get_db, scope="function")) -> Response:  # noqa: ANN001
        return page(request, "session.html", user=session.user, csrf_token=session.csrf_token,
                    progress=progress(session_id, admin, db), agreement=session_agreement(db, session_id))

    return app
