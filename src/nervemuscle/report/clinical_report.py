"""The clinician's report of one exam: self-contained HTML (images embedded) and a PDF printed by Chromium."""
from __future__ import annotations

import base64
import shutil
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from nervemuscle.errors import OutputError
from nervemuscle.grading import SEVERITY_NAMES

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: Optional item fields shown in the tables (missing ones are shown as n/a).
NERVE_COLUMNS = ("csa_mm2", "t2_ratio", "thickening_grade", "t2_grade", "grade")
MUSCLE_COLUMNS = ("volume_ml", "volume_loss", "t2_ratio", "fat_fraction", "edema_grade", "atrophy_grade", "fat_grade",
                  "atrophy_reference", "fat_fraction_sd", "segmentation_confidence")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("nervemuscle.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def data_uri(png: str | Path) -> str:
    """``data:image/png;base64,...`` of a PNG file."""
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode()


def _names(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _grade_word(grade: int | None) -> str:
    return "not assessable" if grade is None else SEVERITY_NAMES[grade]


def impression(findings: dict[str, Any]) -> list[str]:
    """Plain-language impression: one sentence per finding type, from grades only (no new judgement)."""
    s = findings["summary"]
    if s["abnormal"] is None:
        return ["Neither nerves nor muscles could be assessed on this examination."]
    if s["abnormal"]:
        where = [part for part, hit in (("nerve", s["nerve_abnormal"]), ("muscle", s["muscle_abnormal"])) if hit]
        lines = [f"Abnormal MRI by the grading protocol: {' and '.join(where)} findings."]
    else:
        lines = ["Normal nerve and muscle MRI by the grading protocol."]
    thick = [n for n in findings["nerves"] if (n.get("thickening_grade") or 0) >= 1]
    bright = [n for n in findings["nerves"] if (n.get("t2_grade") or 0) >= 1]
    for items, what in ((thick, "Thickening"), (bright, "T2 hyperintensity")):
        if items:
            roots = [f"{n['side']} {n['segment']}" for n in items]
            lines.append(f"{what} of the {_names(roots)} root{'s' if len(roots) > 1 else ''}.")
    if s["nerve_abnormal"] is True and not (thick or bright):
        roots = [f"{n['side']} {n['segment']}" for n in findings["nerves"] if (n.get("grade") or 0) >= 1]
        lines.append(f"Abnormal {_names(roots)} root{'s' if len(roots) > 1 else ''}.")
    if s["nerve_abnormal"] is False:
        lines.append("The C5-T1 roots are of normal calibre and signal.")
    if s["nerve_severity"] not in (None, "none"):
        lines.append(f"Nerve involvement is {s['nerve_severity']} at most.")
    for key, what in (("edema_grade", "Intramuscular edema"), ("atrophy_grade", "Atrophy"),
                      ("fat_grade", "Fatty infiltration")):
        hit = [m for m in findings["muscles"] if (m.get(key) or 0) >= 1]
        if hit:
            parts = [f"{m['side']} {m['name'].replace('_', ' ')} ({_grade_word(m[key])})" for m in hit]
            lines.append(f"{what} of the {_names(parts)}.")
    if s["muscle_abnormal"] is False:
        lines.append("The shoulder-girdle muscles show no edema, atrophy or fatty infiltration.")
    if s["nerve_abnormal"] is None:
        lines.append("The nerve roots could not be assessed.")
    if s["muscle_abnormal"] is None:
        lines.append("The muscles could not be assessed.")
    return lines


def render_html(findings: dict[str, Any], protocol: dict[str, Any], *, key_images: str | Path | None,
                qc_images: list[Path] = (), exam_info: dict[str, Any] | None = None) -> str:
    """The report as one self-contained HTML string (all images base64-embedded)."""
    nerve_ref = protocol["nerve"]["csa_reference_mm2"]
    nerves = []
    for n in findings["nerves"]:
        n = {**dict.fromkeys(NERVE_COLUMNS), **n}
        ref = nerve_ref.get(n["segment"])
        ratio = n["csa_mm2"] / ref if (n["csa_mm2"] is not None and ref) else None
        nerves.append({**n, "csa_ref": ref, "csa_ratio": ratio})
    muscles = [{**dict.fromkeys(MUSCLE_COLUMNS), **m} for m in findings["muscles"]]
    return _env().get_template("clinical_report.html.j2").render(
        f=findings,
        nerves=nerves,
        muscles=muscles,
        muscle_reference={"atlas_fit": None, **findings.get("muscle_reference", {})},
        protocol=protocol,
        impression=impression(findings),
        key_images=data_uri(key_images) if key_images else None,
        qc_images=[(Path(p).stem.replace("_", " "), data_uri(p)) for p in qc_images],
        exam={"patient": None, "study_date": None, "notes": [], **(exam_info or {})},
        severity=_grade_word,
    )


def write_pdf(html_path: str | Path, pdf_path: str | Path) -> Path | None:
    """Print ``html_path`` to ``pdf_path`` with Debian's Chromium (Playwright); warn and return ``None`` when
    Chromium is not installed."""
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        warnings.warn(f"{CHROMIUM} not found: wrote the HTML report only (no PDF)", stacklevel=2)
        return None
    from playwright.sync_api import sync_playwright

    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists()
                                        else shutil.which("chromium"), args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(Path(html_path).resolve().as_uri(), wait_until="load")
            page.pdf(path=str(pdf_path), format="A4", print_background=True,
                     margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
            browser.close()
    except Exception as exc:  # noqa: BLE001 - browser failures are many; report one line
        raise OutputError(f"PDF printing failed ({exc.__class__.__name__}: {str(exc).splitlines()[0]})",
                          pdf_path) from None
    return Path(pdf_path)
