"""Writing the cohort outputs: table.csv, results.json, report.html and report.pdf (atomically)."""
from __future__ import annotations

import base64
import csv
import datetime as _dt
import json
import math
import warnings
from pathlib import Path

import jinja2
import numpy as np

from nervemuscle._version import __version__
from nervemuscle.errors import OutputError
from nervemuscle.outputs import atomic_output_dir
from nervemuscle.stats import plots
from nervemuscle.stats.cohort import FINDINGS, MEASURES, PAPER, SEVERITY_MEASURES, Cohort, analyse_cohort

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def json_safe(value):
    """Plain JSON types: numpy scalars/arrays converted, tuples to lists, NaN and inf to ``None``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# ---- formatting shared by the CSV, the text table and the HTML ------------------------------------

def fmt_pct(p: dict | None) -> str:
    """'51/60 (85%)' or 'n/a'."""
    if not p or not p["n"]:
        return "n/a"
    return f"{p['k']}/{p['n']} ({int(100 * p['k'] / p['n'] + 0.5 + 1e-9)}%)"


def fmt_ci(ci, scale: float = 100.0, digits: int = 1) -> str:
    """'73.9-91.9' (percent by default) or ''."""
    if not ci or ci[0] is None:
        return ""
    sep = " to " if ci[0] < 0 or ci[1] < 0 else "–"
    return f"{ci[0] * scale:.{digits}f}{sep}{ci[1] * scale:.{digits}f}"


def fmt_p(p) -> str:
    """p value as usually printed: '<0.001', 3 decimals below 0.01, else 2 decimals."""
    if p is None:
        return "–"
    if p < 0.001:
        return "<0.001"
    return f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def fmt_num(x, digits: int | None = None) -> str:
    """Number with ``digits`` decimals; by default 2, 1 from 10 and 0 from 100 upwards."""
    if x is None:
        return "–"
    if digits is None:
        digits = 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2
    return f"{x:.{digits}f}"


def group_table_rows(results: dict) -> list[dict]:
    """The paper-style table as rows of strings (also written to table.csv)."""
    groups = results["groups"]
    comp = results.get("comparison") or {}
    rows = []
    for k, name in FINDINGS.items():
        row = {"Finding": name}
        for g, stats in groups.items():
            p = stats["findings"][k]
            row[f"{g} k/n (%)"] = fmt_pct(p)
            row[f"{g} Wilson 95% CI (%)"] = fmt_ci(p["wilson"])
            row[f"{g} Clopper-Pearson 95% CI (%)"] = fmt_ci(p["exact"])
        if comp:
            row[f"Fisher p ({comp['a']} vs {comp['b']})"] = fmt_p(comp["fisher"][k]["p"])
        rows.append(row)
    for kind in ("nerve", "muscle"):
        for level in ("mild", "moderate", "severe"):
            row = {"Finding": f"{kind.capitalize()} severity: {level}"}
            for g, stats in groups.items():
                counts = stats["severity"][kind]
                n = counts["none"] + counts["mild"] + counts["moderate"] + counts["severe"]
                row[f"{g} k/n (%)"] = fmt_pct({"k": counts[level], "n": n})
                row[f"{g} Wilson 95% CI (%)"] = row[f"{g} Clopper-Pearson 95% CI (%)"] = ""
            if comp:
                row[f"Fisher p ({comp['a']} vs {comp['b']})"] = ""
            rows.append(row)
    for pattern in ("diffuse", "focal"):  # measured roots by pattern (MMN focal vs ALS diffuse)
        row = {"Finding": f"Root pattern: {pattern} (roots)"}
        for g, stats in groups.items():
            counts = stats.get("root_patterns") or {}
            n = sum(counts.get(name, 0) for name in ("normal", "diffuse", "focal"))
            row[f"{g} k/n (%)"] = fmt_pct({"k": counts.get(pattern, 0), "n": n})
            row[f"{g} Wilson 95% CI (%)"] = row[f"{g} Clopper-Pearson 95% CI (%)"] = ""
        if comp:
            row[f"Fisher p ({comp['a']} vs {comp['b']})"] = ""
        rows.append(row)
    return rows


def format_paper_comparison(results: dict) -> str:
    """Plain-text table of this cohort's ALS and MMN figures next to Staff et al. 2015's published ones."""
    groups = results["groups"]
    lines = [f"Comparison with {PAPER['source']}",
             (f"{'Finding':<17}" + "".join(f"{g + ': ours':<29}{g + ': paper':<14}" for g in ("ALS", "MMN"))).rstrip()]
    for k in ("abnormal", "nerve_abnormal", "muscle_abnormal"):
        cells = []
        for g in ("ALS", "MMN"):
            p = groups.get(g, {}).get("findings", {}).get(k)
            ours = "no exams" if p is None else f"{fmt_pct(p)} [{fmt_ci(p['wilson'], digits=0)}]" if p["n"] else "n/a"
            cells.append(f"{ours:<29}{str(PAPER[g][k]) + '% (n=' + str(PAPER[g]['n']) + ')':<14}")
        lines.append((f"{FINDINGS[k]:<17}" + "".join(cells)).rstrip())
    lines.append("ours: k/n (%) [Wilson 95% CI, %]; a finding not assessable in an exam leaves its denominator.")
    return "\n".join(lines)


def format_reader_agreement(results: dict) -> str:
    """Plain-text reader agreement over all ordinal scales (linearly weighted kappa, asymptotic 95% CI);
    empty without reads."""
    if not results.get("agreement"):
        return ""
    lines = ["Reader agreement, all ordinal scales (linearly weighted kappa, asymptotic 95% CI):"]
    for row in results["agreement"]["pairs"]:
        k = row["linear"] if row["scale"] == "all ordinal" else None
        if k and k["kappa"] is not None:
            lines.append(f"  {row['rater_a']} vs {row['rater_b']}: {k['kappa']:.2f} ({k['ci'][0]:.2f} to "
                         f"{k['ci'][1]:.2f}), {row['n_items']} items in {row['n_exams']} exams")
    return "\n".join(lines)


def write_table_csv(results: dict, path: Path) -> None:
    rows = group_table_rows(results)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _b64(png: bytes | None) -> str | None:
    return None if png is None else base64.b64encode(png).decode("ascii")


def render_html(cohort: Cohort, results: dict) -> str:
    """The self-contained HTML report (figures embedded as base64 PNG)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("nervemuscle.stats", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=fmt_pct, ci=fmt_ci, p=fmt_p, num=fmt_num)
    figures = {
        "findings": _b64(plots.findings_bars(results)),
        "severity": _b64(plots.severity_bars(results)),
        "items": _b64(plots.item_frequency(results)),
        "roots": _b64(plots.root_distributions(cohort)),
        "measures": _b64(plots.measure_distributions(cohort, MEASURES)),
        "alsfrs": _b64(plots.alsfrs_scatter(cohort)),
    }
    return env.get_template("cohort_report.html.j2").render(
        r=results, findings=FINDINGS, measures=MEASURES, severity_measures=SEVERITY_MEASURES, fig=figures,
        paper_text=format_paper_comparison(results), version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))


def html_to_pdf(html_path: Path, pdf_path: Path) -> str | None:
    """Print the HTML to PDF with Chromium (Playwright); returns a warning instead when impossible."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found: report.pdf skipped"
    try:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(html_path.resolve().as_uri(), wait_until="load")
                page.pdf(path=str(pdf_path), format="A4", print_background=True,
                         margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
            finally:
                browser.close()
    except Exception as exc:  # noqa: BLE001 - a broken browser must not lose the other outputs
        return f"report.pdf skipped: Chromium failed ({exc.__class__.__name__}: {str(exc).splitlines()[0]})"
    return None


def check_output_dir(out_dir: str | Path) -> Path:
    """Refuse an existing ``out_dir`` unless it is empty or an earlier cohort output (OutputError)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / "results.json").exists())):
        raise OutputError("exists and is not an earlier cohort output; choose an empty or new folder", out_dir)
    return out_dir


def write_outputs(cohort: Cohort, results: dict, out_dir: str | Path, pdf: bool = True) -> dict:
    """Write table.csv, results.json, report.html (+ report.pdf) into ``out_dir`` atomically.

    Everything is written into a temporary folder beside ``out_dir`` and renamed into place; an
    existing ``out_dir`` is replaced only if it is empty or holds a previous cohort output.
    """
    out_dir = check_output_dir(out_dir)
    try:
        with atomic_output_dir(out_dir, error="cannot write") as tmp:
            html = render_html(cohort, results)
            (tmp / "report.html").write_text(html, encoding="utf-8")
            if pdf:
                warning = html_to_pdf(tmp / "report.html", tmp / "report.pdf")
                if warning:
                    results["warnings"].append(warning)
                    warnings.warn(warning, stacklevel=2)
            write_table_csv(results, tmp / "table.csv")
            (tmp / "results.json").write_text(json.dumps(json_safe(results), indent=1, allow_nan=False))
    except OSError as exc:
        raise OutputError(f"cannot write ({exc.__class__.__name__}: {exc})", out_dir) from None
    return results


def run_cohort(findings_root, clinical_csv, out_dir, reads_csv=None, *, pdf: bool = True) -> dict:
    """Pool the cohort, compute every statistic and write table.csv, results.json, report.html/.pdf.

    Parameters
    ----------
    findings_root : path
        Folder searched recursively for ``findings.json``.
    clinical_csv : path
        Clinical table (see :mod:`nervemuscle.stats.clinical`).
    out_dir : path
        Output folder (created, or replaced if it holds an earlier cohort output).
    reads_csv : path, optional
        Radiologist reads for the agreement analysis.
    pdf : bool
        Also print report.pdf with Chromium (skipped with a warning when Chromium is missing).

    Returns
    -------
    dict
        The results, JSON-safe (as written to results.json).
    """
    check_output_dir(out_dir)
    cohort, results = analyse_cohort(findings_root, clinical_csv, reads_csv)
    results["software"] = {"name": "nervemuscle", "version": __version__}
    write_outputs(cohort, results, out_dir, pdf=pdf)
    return json_safe(results)
