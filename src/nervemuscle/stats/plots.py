"""Cohort figures (matplotlib, Agg) returned as PNG bytes, ready to embed in the report."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from nervemuscle.anatomy import ROOTS  # noqa: E402
from nervemuscle.grading import SEVERITY_NAMES  # noqa: E402
from nervemuscle.stats.cohort import FINDINGS, Cohort, groups_present  # noqa: E402

GROUP_COLORS = {"ALS": "#b2182b", "MMN": "#2166ac", "control": "#7f7f7f"}
SEVERITY_COLORS = ("#e0e0e0", "#fdd49e", "#fc8d59", "#b30000")
plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "axes.titlesize": 10, "axes.titleweight": "bold", "figure.dpi": 110})


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", dpi=130)
    plt.close(fig)
    return buf.getvalue()


def findings_bars(results: dict) -> bytes:
    """Grouped bars: % of each group with each finding, Wilson 95% CI whiskers, k/n on top."""
    groups = list(results["groups"])
    keys = list(FINDINGS)
    fig, ax = plt.subplots(figsize=(8.2, 3.3))
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(keys))
    for gi, g in enumerate(groups):
        props = [results["groups"][g]["findings"][k] for k in keys]
        val = np.array([100 * p["value"] if p["value"] is not None else np.nan for p in props])
        lo = np.array([100 * p["wilson"][0] if p["wilson"] else np.nan for p in props])
        hi = np.array([100 * p["wilson"][1] if p["wilson"] else np.nan for p in props])
        pos = x + (gi - (len(groups) - 1) / 2) * width
        ax.bar(pos, np.nan_to_num(val), width * 0.92, color=GROUP_COLORS.get(g, "k"),
               label=f"{g} (n={results['groups'][g]['n']})")
        ax.errorbar(pos, val, yerr=[val - lo, hi - val], fmt="none", ecolor="k", elinewidth=0.8, capsize=2)
        for p_, xx in zip(props, pos):
            ax.text(xx, 101, f"{p_['k']}/{p_['n']}", ha="center", va="bottom", fontsize=6.5, rotation=90)
    ax.set_xticks(x, [FINDINGS[k].replace(" ", "\n", 1) for k in keys])
    ax.set_ylim(0, 118)
    ax.set_yticks([0, 25, 50, 75, 100])
    ax.set_ylabel("% of assessable exams")
    ax.set_title("Frequency of MRI findings (95% Wilson CI)")
    ax.legend(frameon=False, ncol=len(groups), loc="upper center", bbox_to_anchor=(0.5, -0.2))
    return _png(fig)


def severity_bars(results: dict) -> bytes:
    """Stacked bars: share of none/mild/moderate/severe nerve and muscle findings per group."""
    groups = list(results["groups"])
    fig, axes = plt.subplots(1, 2, figsize=(8.2, 2.4), sharey=True)
    for ax, kind in zip(axes, ("nerve", "muscle")):
        for gi, g in enumerate(groups):
            counts = results["groups"][g]["severity"][kind]
            n = sum(counts[s] for s in SEVERITY_NAMES)
            left = 0.0
            for s, color in zip(SEVERITY_NAMES, SEVERITY_COLORS):
                share = 100 * counts[s] / n if n else 0
                ax.barh(gi, share, left=left, color=color, edgecolor="white", label=s if gi == 0 else None)
                if share >= 8:
                    ax.text(left + share / 2, gi, str(counts[s]), ha="center", va="center", fontsize=7)
                left += share
            ax.text(101, gi, f"n={n}", va="center", fontsize=7)
        ax.set_yticks(range(len(groups)), groups)
        ax.invert_yaxis()
        ax.set_xlim(0, 112)
        ax.set_xlabel("% of assessable exams")
        ax.set_title(f"{kind.capitalize()} severity (highest grade)")
    axes[0].legend(frameon=False, ncol=4, loc="upper left", bbox_to_anchor=(0.0, -0.28), fontsize=7)
    return _png(fig)


def _strip(ax, data: list[np.ndarray], positions, colors, rng) -> None:
    keep = [(d, p, c) for d, p, c in zip(data, positions, colors) if d.size]
    if not keep:
        return
    bp = ax.boxplot([d for d, _, _ in keep], positions=[p for _, p, _ in keep], widths=0.55, showfliers=False,
                    patch_artist=True, medianprops={"color": "k"})
    for patch, (_, _, c) in zip(bp["boxes"], keep):
        patch.set(facecolor=c, alpha=0.25, edgecolor=c)
    for d, p, c in keep:
        ax.scatter(p + rng.uniform(-0.18, 0.18, d.size), d, s=6, color=c, alpha=0.75, linewidths=0)


def root_distributions(cohort: Cohort) -> bytes:
    """CSA and T2 ratio per root (sides averaged per exam), one box + points per group."""
    exams = cohort.exams.dropna(subset=["diagnosis"])
    groups = groups_present(exams)
    dx = exams.set_index("exam_id")["diagnosis"]
    roots = cohort.roots.groupby(["exam_id", "segment"], as_index=False)[["csa_mm2", "t2_ratio"]].mean()
    roots["diagnosis"] = roots["exam_id"].map(dx)
    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 2, figsize=(8.2, 2.9))
    step = len(groups) + 1
    for ax, (q, label) in zip(axes, (("csa_mm2", "Root CSA (mm²)"), ("t2_ratio", "Root T2 ratio (root / muscle)"))):
        data, pos, cols = [], [], []
        for ri, seg in enumerate(ROOTS):
            for gi, g in enumerate(groups):
                v = roots.loc[(roots["segment"] == seg) & (roots["diagnosis"] == g), q].to_numpy(float)
                data.append(v[np.isfinite(v)])
                pos.append(ri * step + gi)
                cols.append(GROUP_COLORS.get(g, "k"))
        _strip(ax, data, pos, cols, rng)
        ax.set_xticks([ri * step + (len(groups) - 1) / 2 for ri in range(len(ROOTS))], ROOTS)
        ax.set_title(label)
    handles = [plt.Line2D([], [], marker="s", ls="", color=GROUP_COLORS.get(g, "k"), label=g) for g in groups]
    fig.legend(handles=handles, frameon=False, fontsize=7, ncol=len(groups), loc="lower center", bbox_to_anchor=(0.5, -0.06))
    return _png(fig)


def measure_distributions(cohort: Cohort, measures: dict) -> bytes:
    """Exam-level measures per group (box + points), one panel per measure."""
    exams = cohort.exams.dropna(subset=["diagnosis"])
    groups = groups_present(exams)
    keys = [k for k in measures if exams[k].notna().any()]
    cols = 4
    rows = max(1, int(np.ceil(len(keys) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(8.2, 2.1 * rows), squeeze=False)
    rng = np.random.default_rng(1)
    for ax, k in zip(axes.flat, keys):
        data = [exams.loc[exams["diagnosis"] == g, k].dropna().to_numpy(float) for g in groups]
        _strip(ax, data, list(range(len(groups))), [GROUP_COLORS.get(g, "k") for g in groups], rng)
        ax.set_xticks(range(len(groups)), groups)
        name, unit, _ = measures[k]
        ax.set_title(name + (f" ({unit})" if unit else ""), fontsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def alsfrs_scatter(cohort: Cohort, group: str = "ALS") -> bytes | None:
    """ALSFRS-R against nerve and muscle severity grade and abnormal MRI, within ``group``."""
    ex = cohort.exams[(cohort.exams["diagnosis"] == group)]
    if "alsfrs_r" not in ex.columns or ex["alsfrs_r"].notna().sum() < 3:
        return None
    rng = np.random.default_rng(2)
    fig, axes = plt.subplots(1, 3, figsize=(8.2, 2.5), sharey=True)
    panels = (("abnormal", "Abnormal MRI", ("no", "yes")),
              ("nerve_severity_grade", "Nerve severity", SEVERITY_NAMES),
              ("muscle_severity_grade", "Muscle severity", SEVERITY_NAMES))
    for ax, (k, title, ticks) in zip(axes, panels):
        sub = ex[[k, "alsfrs_r"]].dropna()
        data = [sub.loc[sub[k] == i, "alsfrs_r"].to_numpy(float) for i in range(len(ticks))]
        _strip(ax, data, list(range(len(ticks))), [GROUP_COLORS.get(group, "k")] * len(ticks), rng)
        ax.set_xticks(range(len(ticks)), ticks, fontsize=7)
        ax.set_xlim(-0.6, len(ticks) - 0.4)
        ax.set_title(title)
    axes[0].set_ylabel("ALSFRS-R")
    fig.suptitle(f"{group}: findings vs ALSFRS-R", fontsize=9, y=1.03)
    return _png(fig)


def item_frequency(results: dict) -> bytes:
    """Per-root and per-muscle frequency of abnormality (sides pooled) per group."""
    groups = list(results["groups"])
    first = results["groups"][groups[0]]
    roots, muscles = list(first["roots"]), list(first["muscles"])
    fig, axes = plt.subplots(1, 2, figsize=(8.2, 3.0), gridspec_kw={"width_ratios": [len(roots) + 1, len(muscles) + 1]})
    width = 0.8 / len(groups)
    for ax, part, names in ((axes[0], "roots", roots), (axes[1], "muscles", muscles)):
        x = np.arange(len(names))
        for gi, g in enumerate(groups):
            vals = [results["groups"][g][part][nm]["value"] for nm in names]
            ax.bar(x + (gi - (len(groups) - 1) / 2) * width, [100 * v if v is not None else 0 for v in vals],
                   width * 0.92, color=GROUP_COLORS.get(g, "k"), label=g)
        ax.set_xticks(x, [nm.replace("_", " ") for nm in names], rotation=0 if part == "roots" else 40,
                      ha="center" if part == "roots" else "right", fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_title(f"Abnormal {part[:-1]} (either side), %")
    axes[1].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return _png(fig)
