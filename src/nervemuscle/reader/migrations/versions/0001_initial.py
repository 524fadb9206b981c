"""Initial reader-study schema: users, sessions, exams, series, reading sessions, reads, audit log.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_login_attempts_key", "login_attempts", ["username", "client", "at"])
    op.create_table(
        "exams",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("exam_id", sa.String(128), nullable=False, unique=True),
        sa.Column("folder", sa.Text, nullable=False),
        sa.Column("clinical", sa.JSON, nullable=False),
        sa.Column("findings", sa.JSON, nullable=True),
        sa.Column("imported_at", TS, nullable=False),
    )
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("exam_pk", sa.Integer, sa.ForeignKey("exams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("shape", sa.JSON, nullable=False),
    )
    op.create_table(
        "reading_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("blinded", sa.Boolean, nullable=False),
        sa.Column("protocol", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("reading_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.UniqueConstraint("session_id", "reader_id"),
    )
    op.create_table(
        "reads",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer, sa.ForeignKey("reading_sessions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("exam_pk", sa.Integer, sa.ForeignKey("exams.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reader_id", sa.Integer, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("submitted_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("session_id", "exam_pk", "reader_id"),
    )
    op.create_table(
        "read_grades",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("read_id", sa.Integer, sa.ForeignKey("reads.id", ondelete="CASCADE"), nullable=False),
        sa.Column("item", sa.String(64), nullable=False),
        sa.Column("scale", sa.String(32), nullable=False),
        sa.Column("grade", sa.Integer, nullable=False),
        sa.UniqueConstraint("read_id", "item", "scale"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("read_id", sa.Integer, sa.ForeignKey("reads.id", ondelete="CASCADE"), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("item", sa.String(64), nullable=True),
        sa.Column("scale", sa.String(32), nullable=True),
        sa.Column("old", sa.Text, nullable=True),
        sa.Column("new", sa.Text, nullable=True),
    )


def downgrade() -> None:
    for table in ("audit_log", "read_grades", "reads", "assignments", "reading_sessions", "series", "exams",
                  "login_attempts", "login_sessions", "users"):
        op.drop_table(table)
