"""Accounts, server-side login sessions, CSRF tokens and login rate limiting."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, joinedload

from nervemuscle.reader.models import LoginAttempt, LoginSession, User, utcnow

ROLES = ("admin", "reader")
SESSION_COOKIE = "nm_session"
LOGIN_CSRF_COOKIE = "nm_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(hours=12)
#: Failed logins allowed per (username, client address) within :data:`RATE_WINDOW`.
MAX_FAILURES = 5
RATE_WINDOW = timedelta(minutes=1)
MIN_PASSWORD_LENGTH = 8

#: Argon2id with the OWASP password-storage parameters (19 MiB, 2 passes, 1 lane): about 30 ms per hash.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
#: Verified against when the user does not exist, so that timing does not reveal valid names.
_DUMMY_HASH = _hasher.hash("nervemuscle-dummy-password")


def hash_password(password: str) -> str:
    """Argon2id hash (PHC string with its parameters, so they can be raised later)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)  # SQLite drops the zone


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(db: Session, username: str, role: str, password: str) -> User:
    """Create an account; raises ``ValueError`` for a bad role, short password or taken name."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    if not username or len(username) > 64 or not username.replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise ValueError(f"user name must be 1-64 letters, digits, '.', '_' or '-', got {username!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise ValueError(f"user {username!r} exists already")
    user = User(username=username, role=role, password_hash=hash_password(password))
    db.add(user)
    db.flush()
    return user


def too_many_failures(db: Session, username: str, client: str) -> bool:
    """True when (username, client) had :data:`MAX_FAILURES` failed logins within :data:`RATE_WINDOW`."""
    since = utcnow() - RATE_WINDOW
    count = db.scalar(select(func.count()).select_from(LoginAttempt).where(
        LoginAttempt.username == username, LoginAttempt.client == client, LoginAttempt.at >= since))
    return count >= MAX_FAILURES


def authenticate(db: Session, username: str, password: str, client: str) -> User | None:
    """The user when the password is right; a failure is recorded for rate limiting."""
    user = db.scalar(select(User).where(User.username == username))
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password) and user is not None
    if ok:
        db.execute(delete(LoginAttempt).where(LoginAttempt.username == username, LoginAttempt.client == client))
        return user
    db.execute(delete(LoginAttempt).where(LoginAttempt.at < utcnow() - RATE_WINDOW))  # keep the table small
    db.add(LoginAttempt(username=username[:64], client=client[:64]))
    return None


def open_session(db: Session, user: User) -> str:
    """New server-side session; returns the cookie token (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    db.execute(delete(LoginSession).where(LoginSession.expires_at < utcnow()))  # drop expired sessions
    db.add(LoginSession(token_hash=token_hash(token), csrf_token=secrets.token_urlsafe(32), user_id=user.id,
                        expires_at=utcnow() + SESSION_LIFETIME))
    return token


def session_for(db: Session, token: str | None) -> LoginSession | None:
    """The live session of a cookie token with its user, or ``None`` (unknown or expired)."""
    if not token:
        return None
    found = db.scalar(select(LoginSession).options(joinedload(LoginSession.user))
                      .where(LoginSession.token_hash == token_hash(token)))
    if found is None or _aware(found.expires_at) < utcnow():
        return None
    return found


def close_session(db: Session, token: str | None) -> None:
    if token:
        db.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash(token)))


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of CSRF tokens (both must be present)."""
    return bool(expected) and bool(given) and hmac.compare_digest(expected, given)
