"""JSON API of the reader app: reader endpoints (worklist, reads, volumes) and admin endpoints."""
from __future__ import annotations

import csv
import io
import json
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
from nibabel.filebasedimages import ImageFileError
from fastapi import APIRouter, BackgroundTasks, Depends, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nervemuscle.anatomy import label_names
from nervemuscle.errors import BadInputError
from nervemuscle.reader import auth
from nervemuscle.reader.agreement import AUTOMATED, agreement_table
from nervemuscle.reader.display import display_copy, preview_copy, preview_factors
from nervemuscle.reader.exams import discover_exams, resolve_inside
from nervemuscle.reader.forms import allowed_grades, automated_grades, build_form, form_as_dict
from nervemuscle.reader.models import (Assignment, AuditEntry, Exam, LoginSession, Read, ReadGrade,
                                       ReadingSession, Series, User, utcnow)

log = logging.getLogger(__name__)

EXPORT_COLUMNS = ("exam_id", "reader", "item", "scale", "grade", "submitted_at")


# ---------------------------------------------------------------- dependencies

# The dependencies that do no blocking I/O are ``async``: FastAPI runs a sync dependency in the thread pool, and
# every hop there and back costs more than the work itself (the endpoint and the session lookup still go there).

async def get_read_db(request: Request) -> AsyncIterator[Session]:
    """A read-only session (deferred transactions on SQLite): authentication and GET requests."""
    db = request.app.state.read_sessions()  # connects lazily, in the thread that first queries
    try:
        yield db
    finally:
        db.close()


async def get_db(request: Request, read_db: Session = Depends(get_read_db, scope="function")) -> AsyncIterator[Session]:
    """The endpoint's session: the read session for GET, else one write transaction per request.

    The write transaction is committed when the endpoint returns (rolled back on error) and, used with
    ``scope="function"``, before the response is sent: a client's next request always sees what its
    previous one wrote. Authentication runs on the read session, so a writer holds SQLite's write turn
    only while the endpoint itself works (the commit itself is short: WAL with ``synchronous=NORMAL``).
    """
    if request.method in ("GET", "HEAD"):
        yield read_db
        return
    db = request.app.state.sessions()
    try:
        yield db
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()


def login_session(request: Request, db: Session = Depends(get_read_db, scope="function")) -> LoginSession:
    """The caller's live session (its user loaded with it); 401 without one."""
    found = auth.session_for(db, request.cookies.get(auth.SESSION_COOKIE))
    if found is None:
        raise HTTPException(401, "login required")
    return found


async def current_user(session: LoginSession = Depends(login_session)) -> User:
    return session.user


async def require_admin(user: User = Depends(current_user)) -> User:
    if user.role != "admin":
        raise HTTPException(403, "admin only")
    return user


async def check_csrf(request: Request, session: LoginSession = Depends(login_session)) -> None:
    """State-changing requests must echo the session's CSRF token (header or form field)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    given = request.headers.get(auth.CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        given = (await request.form()).get("csrf_token")
    if not auth.tokens_match(session.csrf_token, given if isinstance(given, str) else None):
        raise HTTPException(403, "missing or wrong CSRF token")


router = APIRouter(prefix="/api", dependencies=[Depends(check_csrf)])


# ---------------------------------------------------------------- helpers

def case_label(read: Read, blinded: bool) -> str:
    """What a reader sees of an exam: a case number in a blinded session, the exam id otherwise."""
    return f"Case {read.position + 1}" if blinded else read.exam.exam_id


def own_read(db: Session, read_id: int, user: User, *, lock: bool = False) -> Read:
    """The caller's read ``read_id`` (404 for anyone else's: its existence is not revealed)."""
    query = select(Read).where(Read.id == read_id, Read.reader_id == user.id)
    read = db.scalar(query.with_for_update() if lock else query)
    if read is None:
        raise HTTPException(404, "no such read")
    return read


#: Series and read ids are drawn at random from 1 .. 2**31 - 1 (a PostgreSQL INTEGER), so that they follow
#: neither the import order (alphabetical exam ids would reveal the group) nor the reading order.
_ID_RANGE = 2**31 - 1


def random_ids(db: Session, model: type, n: int) -> list[int]:
    """``n`` distinct random primary keys not yet used in ``model``'s table (see :data:`_ID_RANGE`)."""
    used = set(db.scalars(select(model.id)))
    out: list[int] = []
    while len(out) < n:
        candidate = secrets.randbelow(_ID_RANGE) + 1
        if candidate not in used:
            used.add(candidate)
            out.append(candidate)
    return out


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def has_preview(series: Series) -> bool:
    """Whether the viewer gets a reduced-size preview of ``series`` first (:func:`display.preview_copy`)."""
    return series.kind == "image" and len(series.shape) == 3 and preview_factors(series.shape) != (1, 1, 1)


def read_payload(db: Session, read: Read) -> dict[str, Any]:
    session = db.get(ReadingSession, read.session_id)
    series = [{"id": s.id, "role": s.role, "kind": s.kind, "shape": s.shape,
               "url": f"/api/reads/{read.id}/series/{s.id}/{s.role}.nii",
               "preview_url": f"/api/reads/{read.id}/series/{s.id}/{s.role}.nii?preview=true" if has_preview(s) else None}
              for s in read.exam.series]
    return {"read_id": read.id, "case": case_label(read, session.blinded), "session": session.name,
            "form": form_as_dict(session.protocol), "comment": read.comment,
            "grades": [{"item": g.item, "scale": g.scale, "grade": g.grade} for g in read.grades],
            "submitted_at": _iso(read.submitted_at), "series": series, "label_names": label_names()}


def audit(db: Session, user: User, read: Read | None, action: str, item: str | None = None,
          scale: str | None = None, old: Any = None, new: Any = None) -> None:
    db.add(AuditEntry(user_id=user.id, read_id=read.id if read else None, action=action, item=item, scale=scale,
                      old=None if old is None else str(old), new=None if new is None else str(new)))


# ---------------------------------------------------------------- reader endpoints

@router.get("/me")
def me(session: LoginSession = Depends(login_session)) -> dict[str, Any]:
    return {"username": session.user.username, "role": session.user.role, "csrf_token": session.csrf_token}


@router.get("/worklist")
def worklist(user: User = Depends(current_user), db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    """The caller's reads in their randomised order (no exam ids in blinded sessions, no clinical data)."""
    rows = db.execute(select(Read, ReadingSession).join(ReadingSession, ReadingSession.id == Read.session_id)
                      .where(Read.reader_id == user.id).order_by(Read.session_id, Read.position)).all()
    counts = dict(db.execute(select(ReadGrade.read_id, func.count()).join(Read, Read.id == ReadGrade.read_id)
                             .where(Read.reader_id == user.id).group_by(ReadGrade.read_id)).all())
    return [{"read_id": r.id, "session": s.name, "case": case_label(r, s.blinded),
             "status": "submitted" if r.submitted_at else ("in progress" if counts.get(r.id) else "new"),
             "n_graded": counts.get(r.id, 0), "n_items": len(allowed_grades(s.protocol))} for r, s in rows]


@router.get("/reads/{read_id}")
def get_read(read_id: int, user: User = Depends(current_user), db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    return read_payload(db, own_read(db, read_id, user))


class GradeIn(BaseModel):
    item: str = Field(max_length=64)
    scale: str = Field(max_length=32)
    grade: int | None  # None clears the cell


class ReadUpdate(BaseModel):
    grades: list[GradeIn] = Field(default_factory=list, max_length=1000)
    comment: str | None = Field(default=None, max_length=10000)


@router.put("/reads/{read_id}")
def save_read(read_id: int, body: ReadUpdate, user: User = Depends(current_user),
              db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Autosave: set or clear grades and the comment of a draft read; every change is audited."""
    read = own_read(db, read_id, user, lock=True)
    if read.submitted_at is not None:
        raise HTTPException(409, "read already submitted (locked)")
    allowed = allowed_grades(db.get(ReadingSession, read.session_id).protocol)
    for g in body.grades:
        top = allowed.get((g.item, g.scale))
        if top is None:
            raise HTTPException(422, f"unknown item/scale {g.item}/{g.scale}")
        if g.grade is not None and not 0 <= g.grade <= top:
            raise HTTPException(422, f"grade of {g.item}/{g.scale} must be 0..{top}, got {g.grade}")
    existing = {(g.item, g.scale): g for g in read.grades}
    changed = 0
    for g in body.grades:
        row = existing.get((g.item, g.scale))
        old = None if row is None else row.grade
        if old == g.grade:
            continue
        if g.grade is None:
            read.grades.remove(row)
        elif row is None:
            row = ReadGrade(item=g.item, scale=g.scale, grade=g.grade)
            read.grades.append(row)
            existing[(g.item, g.scale)] = row
        else:
            row.grade = g.grade
        audit(db, user, read, "grade", g.item, g.scale, old, g.grade)
        changed += 1
    if body.comment is not None and body.comment != read.comment:
        audit(db, user, read, "comment", old=read.comment, new=body.comment)
        read.comment = body.comment
        changed += 1
    if changed:
        read.updated_at = utcnow()
    return {"saved": changed, "n_graded": len(read.grades)}


@router.post("/reads/{read_id}/submit")
def submit_read(read_id: int, user: User = Depends(current_user), db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Lock the read. The overall impression is required; ungraded cells stay absent from the export."""
    read = own_read(db, read_id, user, lock=True)
    if read.submitted_at is not None:
        raise HTTPException(409, "read already submitted (locked)")
    if not any(g.item == "overall" and g.scale == "impression" for g in read.grades):
        raise HTTPException(422, "the overall impression is required before submitting")
    read.submitted_at = utcnow()
    audit(db, user, read, "submit", new=read.submitted_at.isoformat())
    return {"read_id": read.id, "submitted_at": read.submitted_at.isoformat()}


@router.get("/reads/{read_id}/series/{series_id}/{filename}")
def get_series(read_id: int, series_id: int, filename: str, request: Request, preview: bool = False,
               user: User = Depends(current_user), db: Session = Depends(get_db, scope="function")) -> Response:
    """A series of the caller's read as its uncompressed display copy (:func:`display.display_copy`: small
    integers, header free text and extensions stripped), or with ``preview=true`` its reduced-size preview
    (:func:`display.preview_copy`), made at import or on first request."""
    read = own_read(db, read_id, user)
    series = db.get(Series, series_id)
    if series is None or series.exam_pk != read.exam_pk:
        raise HTTPException(404, "no such series")
    path = Path(series.path)
    if not path.is_file():
        raise HTTPException(410, "series file is gone from the data root")
    if not path.resolve().is_relative_to(request.app.state.settings.data_root.resolve()):
        log.error("series %s resolves outside the data root: not served", path)  # a symlink changed after import
        raise HTTPException(403, "series file is outside the data root")
    try:
        copy = (preview_copy if preview else display_copy)(path, request.app.state.display_cache)
    except (OSError, ValueError, ImageFileError) as exc:
        # the reader sees no path (it would name the exam); the server log names the file and the problem
        log.error("display copy of %s failed: %s", path, exc)
        raise HTTPException(500, "the series file could not be read (see the server log)") from None
    return FileResponse(copy, media_type="application/octet-stream", headers={"Cache-Control": "private, max-age=3600"})


# ---------------------------------------------------------------- admin endpoints

class UserIn(BaseModel):
    username: str = Field(max_length=64)
    role: str
    password: str = Field(max_length=1024)


@router.get("/admin/users")
def list_users(_: User = Depends(require_admin), db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    return [{"id": u.id, "username": u.username, "role": u.role} for u in db.scalars(select(User).order_by(User.id))]


@router.post("/admin/users", status_code=201)
def create_user(body: UserIn, admin: User = Depends(require_admin), db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    try:
        user = auth.add_user(db, body.username, body.role, body.password)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    audit(db, admin, None, "add_user", new=f"{user.username}:{user.role}")
    return {"id": user.id, "username": user.username, "role": user.role}


@router.get("/admin/exams")
def list_exams(_: User = Depends(require_admin), db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    return [{"id": e.id, "exam_id": e.exam_id, "clinical": e.clinical, "has_findings": e.findings is not None,
             "series": [{"role": s.role, "kind": s.kind, "shape": s.shape} for s in e.series]}
            for e in db.scalars(select(Exam).order_by(Exam.exam_id))]


class ImportIn(BaseModel):
    path: str = Field(max_length=4096)


@router.post("/admin/exams/import")
def import_exams(body: ImportIn, request: Request, background: BackgroundTasks, admin: User = Depends(require_admin),
                 db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Import one exam folder or a cohort folder; ``path`` is relative to (and must stay inside) the data root.

    The series' display copies are made after the response is sent, so readers' first loads find them ready.
    """
    root = request.app.state.settings.data_root
    try:
        folder = resolve_inside(root, body.path)
        found = discover_exams(folder)
        for ex in found:  # a symlinked file must not point outside the data root either
            for s in ex.series:
                resolve_inside(root, s.path)
    except BadInputError as exc:
        status = 403 if "outside the data root" in exc.message else 400
        raise HTTPException(status, f"{body.path}: {exc.message}") from None
    imported = []
    for ex in found:
        exam = db.scalar(select(Exam).where(Exam.exam_id == ex.exam_id))
        if exam is None:
            exam = Exam(exam_id=ex.exam_id, folder=str(ex.folder), clinical=ex.clinical)
            db.add(exam)
        exam.folder, exam.clinical, exam.findings = str(ex.folder), ex.clinical, ex.findings
        ids = random_ids(db, Series, len(ex.series))
        exam.series = [Series(id=i, role=s.role, kind=s.kind, path=str(s.path), shape=list(s.shape))
                       for i, s in zip(ids, ex.series)]
        imported.append(ex.exam_id)
    audit(db, admin, None, "import", new=f"{body.path}: {len(imported)} exam(s)")
    background.add_task(make_display_copies, [(s.path, s.kind == "image") for ex in found for s in ex.series],
                        request.app.state.display_cache)
    return {"imported": imported}


def make_display_copies(paths: list[tuple[Path, bool]], cache_dir: Path) -> None:
    """Display copies of every ``(path, is_image)``, and previews of the images (:mod:`display`); a file that
    fails is logged here and fails again, with its 500, on request."""
    for path, is_image in paths:
        try:
            (preview_copy if is_image else display_copy)(path, cache_dir)  # a preview makes the display copy first
        except (OSError, ValueError, ImageFileError) as exc:
            log.error("display copy of %s failed: %s", path, exc)


@router.post("/admin/exams/{exam_id}/findings")
async def upload_findings(exam_id: str, file: UploadFile, request: Request, admin: User = Depends(require_admin),
                          db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """Attach a findings.json (validated against the findings schema) to an imported exam."""
    exam = db.scalar(select(Exam).where(Exam.exam_id == exam_id))
    if exam is None:
        raise HTTPException(404, "no such exam")
    limit = request.app.state.settings.max_upload_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(413, f"{file.filename}: larger than {limit} bytes")
    try:
        findings = json.loads(data)
        jsonschema.validate(findings, request.app.state.findings_schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        raise HTTPException(422, f"{file.filename}: not a valid findings.json ({str(exc).splitlines()[0]})") from None
    exam.findings = findings
    audit(db, admin, None, "findings", new=exam_id)
    return {"exam_id": exam_id, "n_nerves": len(findings["nerves"]), "n_muscles": len(findings["muscles"])}


class SessionIn(BaseModel):
    name: str = Field(max_length=128)
    exam_ids: list[str] = Field(min_length=1, max_length=10000)
    readers: list[str] = Field(min_length=1, max_length=200)
    blinded: bool = True


@router.post("/admin/sessions", status_code=201)
def create_session(body: SessionIn, request: Request, admin: User = Depends(require_admin),
                   db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    """A reading session: every reader reads every exam, in an order randomised per reader.

    Reader ``r``'s order is ``numpy.random.default_rng(seed_r).permutation`` of the exams sorted by exam id;
    the seed is stored (progress page), so the order can be reproduced.
    """
    exams = {e.exam_id: e for e in db.scalars(select(Exam).where(Exam.exam_id.in_(body.exam_ids)))}
    missing = sorted(set(body.exam_ids) - set(exams))
    if missing:
        raise HTTPException(422, f"unknown exam(s): {', '.join(missing[:10])}")
    readers = {u.username: u for u in db.scalars(select(User).where(User.username.in_(body.readers)))}
    missing = sorted(set(body.readers) - set(readers))
    if missing:
        raise HTTPException(422, f"unknown reader(s): {', '.join(missing[:10])}")
    session = ReadingSession(name=body.name, blinded=body.blinded, protocol=request.app.state.protocol)
    db.add(session)
    db.flush()
    ordered = [exams[e] for e in sorted(exams)]
    read_ids = iter(random_ids(db, Read, len(ordered) * len(set(body.readers))))
    for name in dict.fromkeys(body.readers):
        seed = secrets.randbits(31)
        db.add(Assignment(session_id=session.id, reader_id=readers[name].id, seed=seed))
        order = np.random.default_rng(seed).permutation(len(ordered))
        for position, index in enumerate(order):
            db.add(Read(id=next(read_ids), session_id=session.id, exam_pk=ordered[index].id,
                        reader_id=readers[name].id, position=position, comment=""))
    audit(db, admin, None, "create_session", new=body.name)
    return {"id": session.id, "name": session.name, "n_exams": len(ordered), "n_readers": len(set(body.readers))}


@router.get("/admin/sessions")
def list_sessions(_: User = Depends(require_admin), db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    return [{"id": s.id, "name": s.name, "blinded": s.blinded, "created_at": _iso(s.created_at)}
            for s in db.scalars(select(ReadingSession).order_by(ReadingSession.id))]


def _session_or_404(db: Session, session_id: int) -> ReadingSession:
    session = db.get(ReadingSession, session_id)
    if session is None:
        raise HTTPException(404, "no such reading session")
    return session


@router.get("/admin/sessions/{session_id}/progress")
def progress(session_id: int, _: User = Depends(require_admin), db: Session = Depends(get_db, scope="function")) -> dict[str, Any]:
    session = _session_or_404(db, session_id)
    rows = db.execute(select(Assignment, User).join(User, User.id == Assignment.reader_id)
                      .where(Assignment.session_id == session_id).order_by(User.username)).all()
    readers = []
    for assignment, user in rows:
        reads = db.scalars(select(Read).where(Read.session_id == session_id, Read.reader_id == user.id)).all()
        readers.append({"reader": user.username, "seed": assignment.seed, "total": len(reads),
                        "submitted": sum(r.submitted_at is not None for r in reads),
                        "started": sum(r.submitted_at is None and len(r.grades) > 0 for r in reads)})
    return {"id": session.id, "name": session.name, "blinded": session.blinded, "readers": readers}


def export_rows(db: Session, session_id: int, *, include_drafts: bool = False) -> list[dict[str, Any]]:
    """Rows ``exam_id, reader, item, scale, grade, submitted_at`` (the ``nervemuscle cohort --reads`` format)."""
    query = (select(Exam.exam_id, User.username, ReadGrade.item, ReadGrade.scale, ReadGrade.grade, Read.submitted_at)
             .join(Read, Read.id == ReadGrade.read_id).join(Exam, Exam.id == Read.exam_pk)
             .join(User, User.id == Read.reader_id).where(Read.session_id == session_id)
             .order_by(Exam.exam_id, User.username, ReadGrade.item, ReadGrade.scale))
    if not include_drafts:
        query = query.where(Read.submitted_at.is_not(None))
    return [dict(zip(EXPORT_COLUMNS, (*row[:5], _iso(row[5]) or ""))) for row in db.execute(query)]


@router.get("/admin/sessions/{session_id}/export")
def export(session_id: int, format: str = "csv", include_drafts: bool = False, _: User = Depends(require_admin),
           db: Session = Depends(get_db, scope="function")) -> Response:
    session = _session_or_404(db, session_id)
    rows = export_rows(db, session_id, include_drafts=include_drafts)
    stem = f"reads-session{session.id}"
    if format == "json":
        return JSONResponse(rows, headers={"Content-Disposition": f'attachment; filename="{stem}.json"'})
    if format != "csv":
        raise HTTPException(422, "format must be csv or json")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(buffer.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'})


def session_agreement(db: Session, session_id: int) -> list[dict[str, Any]]:
    """Weighted kappa between the readers' submitted reads and against the automated grades."""
    session = _session_or_404(db, session_id)
    ratings: dict[str, dict[tuple[str, str, str], int]] = {}
    for row in export_rows(db, session_id):
        ratings.setdefault(row["reader"], {})[(row["exam_id"], row["item"], row["scale"])] = row["grade"]
    exam_ids = {key[0] for r in ratings.values() for key in r}
    for exam in db.scalars(select(Exam).where(Exam.exam_id.in_(exam_ids))):
        for (item, scale), grade in automated_grades(exam.findings or {}).items():
            ratings.setdefault(AUTOMATED, {})[(exam.exam_id, item, scale)] = grade
    n_categories = {scale.name: len(scale.choices) for section in build_form(session.protocol)
                    for scale in section.scales}
    return agreement_table(ratings, n_categories)


@router.get("/admin/sessions/{session_id}/agreement")
def agreement(session_id: int, _: User = Depends(require_admin), db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    return session_agreement(db, session_id)


@router.get("/admin/reads/{read_id}/audit")
def read_audit(read_id: int, _: User = Depends(require_admin), db: Session = Depends(get_db, scope="function")) -> list[dict[str, Any]]:
    rows = db.execute(select(AuditEntry, User.username).outerjoin(User, User.id == AuditEntry.user_id)
                      .where(AuditEntry.read_id == read_id).order_by(AuditEntry.id)).all()
    return [{"at": _iso(a.at), "user": name, "action": a.action, "item": a.item, "scale": a.scale,
             "old": a.old, "new": a.new} for a, name in rows]
