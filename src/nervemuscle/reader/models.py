"""SQLAlchemy 2 models of the reader study (the schema is created by the Alembic migrations)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-aware now (UTC); stored and compared as UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # "admin" | "reader"
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginSession(Base):
    """Server-side session: the cookie holds a random token, the table its SHA-256."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    """Failed logins per (username, client address), for rate limiting."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_login_attempts_key", "username", "client", "at"),)


class Exam(Base):
    __tablename__ = "exams"
    id: Mapped[int] = mapped_column(primary_key=True)
    exam_id: Mapped[str] = mapped_column(String(128), unique=True)
    folder: Mapped[str] = mapped_column(Text)
    clinical: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    findings: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    series: Mapped[list["Series"]] = relationship(back_populates="exam", cascade="all, delete-orphan",
                                                  order_by="(Series.kind, Series.path)")


class Series(Base):
    """One NIfTI file of an exam: an image series (role t1, t2fs, stir, ...) or a label map."""

    __tablename__ = "series"
    id: Mapped[int] = mapped_column(primary_key=True)
    exam_pk: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # "image" | "labels"
    path: Mapped[str] = mapped_column(Text)
    shape: Mapped[list[int]] = mapped_column(JSON)
    exam: Mapped[Exam] = relationship(back_populates="series")


class ReadingSession(Base):
    __tablename__ = "reading_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    blinded: Mapped[bool] = mapped_column(default=True)
    protocol: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Assignment(Base):
    """A reader in a reading session, with the seed of that reader's randomised exam order."""

    __tablename__ = "assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("reading_sessions.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    seed: Mapped[int] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("session_id", "reader_id"),)


class Read(Base):
    """One reader's structured read of one exam in one session (draft until submitted)."""

    __tablename__ = "reads"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("reading_sessions.id", ondelete="CASCADE"))
    exam_pk: Mapped[int] = mapped_column(ForeignKey("exams.id", ondelete="CASCADE"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    exam: Mapped[Exam] = relationship()
    reader: Mapped[User] = relationship()
    grades: Mapped[list["ReadGrade"]] = relationship(cascade="all, delete-orphan", order_by="ReadGrade.id")
    __table_args__ = (UniqueConstraint("session_id", "exam_pk", "reader_id"),)


class ReadGrade(Base):
    __tablename__ = "read_grades"
    id: Mapped[int] = mapped_column(primary_key=True)
    read_id: Mapped[int] = mapped_column(ForeignKey("reads.id", ondelete="CASCADE"))
    item: Mapped[str] = mapped_column(String(64))
    scale: Mapped[str] = mapped_column(String(32))
    grade: Mapped[int] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("read_id", "item", "scale"),)


class AuditEntry(Base):
    """Every change to a read (grade set/cleared, comment, submit), with who and when."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    read_id: Mapped[int | None] = mapped_column(ForeignKey("reads.id", ondelete="CASCADE"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    item: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scale: Mapped[str | None] = mapped_column(String(32), nullable=True)
    old: Mapped[str | None] = mapped_column(Text, nullable=True)
    new: Mapped[str | None] = mapped_column(Text, nullable=True)
