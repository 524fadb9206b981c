"""Series role from DICOM attributes and the series description (clinical-reference.md section 5).

Evidence is weighed in the documented tie-break order: ImageType (Dixon / diffusion / localizer / derived
reformats) > ScanningSequence + InversionTime > SequenceName > SeriesDescription > ScanOptions with TR/TE.
"""
from __future__ import annotations

import re

#: ImageType tokens of Dixon images (token sets of a public classifier, clinical-reference.md section 5).
DIXON_IMAGE_TOKENS = {
    "dixon_water": {"WATER", "W"},
    "dixon_fat": {"FAT", "F"},
    "dixon_in": {"IN_PHASE", "IP"},
    "dixon_opp": {"OPP_PHASE", "OUT_PHASE", "OP"},
}
_DIXON_MAP_TOKENS = {"FAT_FRACTION", "FF", "WATER_FRACTION", "R2_STAR", "T2_STAR"}
_REFORMAT_TOKENS = {"MIP", "MPR", "PROJECTION IMAGE", "REFORMATTED", "SUBTRACTION", "CPR", "MNIP"}
_DIFFUSION_IMAGE_TOKENS = {"DIFFUSION", "ADC", "TRACEW", "TRACE", "FA", "EADC"}

# Word patterns are matched against the description with '_' and '-' turned into spaces.
_FATSAT_RE = re.compile(r"\bfs\b|\bt[12] ?fs\b|fat ?sat|\bstir\b|\bspair\b|\bspir\b|\bwe\b|water ?excit|\btirm\b"
                        r"|\bfatsup\b"
                        r"|chem ?sat|\bproset\b", re.I)
_LOCALIZER_RE = re.compile(r"locali[sz]er|\bpilot\b|\bscout\b|\bsurvey\b|3 ?plane|\baahead|\bloc\b", re.I)
_STIR_RE = re.compile(r"\bstir\b|\btirm|\bir ?[ft]se\b|fast ?ir\b", re.I)
_DWI_RE = re.compile(r"\bdiff|\bdwi\b|\bdti\b|\bresolve\b|\badc\b|\btrace", re.I)
_T1_RE = re.compile(r"\bt1", re.I)
_T2_RE = re.compile(r"\bt2", re.I)
# Dixon patterns use the raw description: Siemens suffixes _W/_F/_in/_opp, GE prefixes WATER:/FAT:/InPhase:/
# OutPhase:, Philips suffixes _W/_F/_IP/_OP.
_DIXON_DESC = [
    ("dixon_water", re.compile(r"^water\s*:|_w$|\bwater\b(?![ _-]?excit)", re.I)),
    ("dixon_fat", re.compile(r"^fat\s*:|_f$|\bfat\b(?![ _-]?(sat|sup|frac))", re.I)),
    ("dixon_in", re.compile(r"^in[ _-]?phase\s*:|_in$|_ip$|\bin[ _-]?phase\b", re.I)),
    ("dixon_opp", re.compile(r"^out[ _-]?phase\s*:|_opp?$|\bopp(osed)?[ _-]?phase\b|\bout[ _-]?phase\b", re.I)),
]


def _tokens(value) -> set[str]:
    """Upper-case tokens of a multi-valued CS attribute given as list, backslash- or underscore-joined text."""
    if value is None:
        return set()
    items = value if isinstance(value, (list, tuple)) else re.split(r"[\\]", str(value))
    return {str(v).strip().upper() for v in items if str(v).strip()}


def _number(value) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def _tr_te(attributes: dict) -> str:
    tr, te, ti = (_number(attributes.get(k)) for k in ("RepetitionTime", "EchoTime", "InversionTime"))
    parts = [f"{name}={v:g} ms" for name, v in (("TR", tr), ("TE", te), ("TI", ti)) if v is not None]
    return ", ".join(parts) or "no TR/TE"


def classify_series(attributes: dict, description: str) -> tuple[str, str]:
    """Classify a series into a role.

    Parameters
    ----------
    attributes : dict
        DICOM-style attributes (``ImageType``, ``ScanningSequence``, ``SequenceVariant``, ``ScanOptions``,
        ``SequenceName``, ``RepetitionTime``/``EchoTime``/``InversionTime`` in ms, optional
        ``DiffusionBValue``). Multi-valued ones as lists or backslash-joined strings.
    description : str
        SeriesDescription (or file stem).

    Returns
    -------
    role, reason : str, str
        ``role`` is one of ``t1, t2fs, stir, dixon_water, dixon_fat, dixon_in, dixon_opp, dwi, localizer,
        other``; ``reason`` names the evidence.
    """
    desc = (description or "").strip()
    words = re.sub(r"[_\-]+", " ", desc)
    image_type = _tokens(attributes.get("ImageType"))
    scanning = _tokens(attributes.get("ScanningSequence"))
    options = _tokens(attributes.get("ScanOptions"))
    seq_name = str(attributes.get("SequenceName") or "").lower()
    tr, te, ti = (_number(attributes.get(k)) for k in ("RepetitionTime", "EchoTime", "InversionTime"))
    bvalue = _number(attributes.get("DiffusionBValue"))
    it_text = "\\".join(sorted(image_type))

    # 1. ImageType
    if image_type & _DIXON_MAP_TOKENS:
        return "other", f"ImageType {it_text}: Dixon parameter map"
    if "DIXON" in image_type or image_type & {"WATER", "FAT", "IN_PHASE", "OPP_PHASE", "OUT_PHASE"}:
        for role, tokens in DIXON_IMAGE_TOKENS.items():
            if image_type & tokens:
                return role, f"ImageType contains {'/'.join(sorted(image_type & tokens))} (Dixon)"
    if "LOCALIZER" in image_type:
        return "localizer", "ImageType contains LOCALIZER"
    if image_type & _DIFFUSION_IMAGE_TOKENS:
        return "dwi", f"ImageType contains {'/'.join(sorted(image_type & _DIFFUSION_IMAGE_TOKENS))}"
    if "DERIVED" in image_type and image_type & _REFORMAT_TOKENS:
        return "other", f"derived reformat (ImageType {'/'.join(sorted(image_type & _REFORMAT_TOKENS))})"
    # Philips single-letter tokens (ORIGINAL\PRIMARY\W_FFE\W\FFE) count unless it is a magnitude/phase image
    if image_type & {"W", "F", "IP", "OP"} and not image_type & {"M", "P", "R", "I"}:
        for role, tokens in DIXON_IMAGE_TOKENS.items():
            if image_type & tokens:
                return role, f"ImageType contains {'/'.join(sorted(image_type & tokens))} (Dixon)"

    # 2. ScanningSequence + TI (and diffusion weighting)
    is_ir = "IR" in scanning or "IR" in options
    if "EP" in scanning and ((bvalue is not None and bvalue > 0) or _DWI_RE.search(words) or "ep_b" in seq_name):
        why = f"b={bvalue:g}" if bvalue else ("SequenceName " + seq_name if "ep_b" in seq_name else "description")
        return "dwi", f"echo-planar (ScanningSequence EP) with diffusion weighting ({why})"
    if is_ir and ti is not None:
        if 100 <= ti <= 300:
            return "stir", f"inversion recovery with TI={ti:g} ms (100-300 ms: STIR)"
        if ti > 1500:
            return "other", f"inversion recovery with TI={ti:g} ms (>1500 ms: FLAIR)"
        return "other", f"inversion recovery with TI={ti:g} ms (neither STIR nor FLAIR)"
    if bvalue is not None and bvalue > 0:
        return "dwi", f"DiffusionBValue={bvalue:g}"

    # 3. SequenceName
    if "tir" in seq_name and "tfl" not in seq_name:
        return "stir", f"SequenceName {seq_name!r} (Siemens IR-TSE)"
    if "ep_b" in seq_name:
        return "dwi", f"SequenceName {seq_name!r} (Siemens diffusion EPI)"

    # 4. SeriesDescription patterns
    if _LOCALIZER_RE.search(words):
        return "localizer", f"description {desc!r} names a localizer"
    for role, pattern in _DIXON_DESC:
        if pattern.search(desc):
            return role, f"description {desc!r} names a Dixon {role.split('_')[1]} image"
    if _STIR_RE.search(words) or (is_ir and not ("GR" in scanning)):
        why = f"description {desc!r}" if _STIR_RE.search(words) else "inversion recovery without TI"
        return "stir", f"{why} (STIR)"
    if _DWI_RE.search(words):
        return "dwi", f"description {desc!r} names diffusion"

    # 5. ScanOptions fat saturation with TR/TE weighting, then description weighting
    fat_sat = "FS" in options or bool(_FATSAT_RE.search(words))
    fs_why = "ScanOptions FS" if "FS" in options else (f"description {desc!r}" if fat_sat else "")
    if tr is not None and te is not None:
        if tr > 2000 and te > 50:
            if fat_sat:
                return "t2fs", f"T2-weighted ({_tr_te(attributes)}) with fat suppression ({fs_why})"
            return "other", f"T2-weighted ({_tr_te(attributes)}) without fat suppression"
        if tr < 1000 and te < 30 and not is_ir:
            if fat_sat:
                return "other", f"T1-weighted ({_tr_te(attributes)}) but fat-suppressed ({fs_why})"
            return "t1", f"T1-weighted: TR<1000 and TE<30 ms ({_tr_te(attributes)})"
    if _T1_RE.search(words) and not fat_sat:
        return "t1", f"description {desc!r} names T1 ({_tr_te(attributes)})"
    if _T2_RE.search(words) and fat_sat:
        return "t2fs", f"description {desc!r} names fat-suppressed T2 ({_tr_te(attributes)})"
    return "other", f"no rule matched ({_tr_te(attributes)}, description {desc!r})"
