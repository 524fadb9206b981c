"""Series classification on synthetic Siemens-, GE- and Philips-style headers (clinical-reference.md section 5)."""
from __future__ import annotations

import pytest

from nervemuscle.io import classify_series


def attrs(scanning="SE", variant="SK", options="", seqname="", image_type="ORIGINAL\\PRIMARY\\M\\ND", tr=600.0,
          te=12.0, ti=None, **extra):
    out = {"ScanningSequence": scanning.split("\\"), "SequenceVariant": variant.split("\\"),
           "ScanOptions": [o for o in options.split("\\") if o], "SequenceName": seqname,
           "ImageType": image_type.split("\\"), "RepetitionTime": tr, "EchoTime": te, **extra}
    if ti is not None:
        out["InversionTime"] = ti
    return out


CASES = [
    # Siemens
    ("t1", "t1_tse_cor", attrs(variant="SK\\SP\\OSP", seqname="*tse2d1_3", tr=650, te=11)),
    ("t2fs", "t2_tse_tra_fs", attrs(variant="SK\\SP\\OSP", options="FS", seqname="*tse2d1_15", tr=4500, te=80)),
    ("stir", "t2_tirm_cor", attrs(scanning="IR", variant="SK\\SP\\MP\\OSP", seqname="*tir2d1_13", tr=5000, te=45,
                                  ti=210)),
    ("dixon_water", "t1_vibe_dixon_tra_W", attrs(scanning="GR", image_type="DERIVED\\PRIMARY\\DIXON\\WATER", tr=6,
                                                 te=2.4)),
    ("dixon_fat", "t1_vibe_dixon_tra_F", attrs(scanning="GR", image_type="DERIVED\\PRIMARY\\DIXON\\FAT", tr=6,
                                               te=2.4)),
    ("dixon_in", "t1_vibe_dixon_tra_in", attrs(scanning="GR", image_type="ORIGINAL\\PRIMARY\\DIXON\\IN_PHASE",
                                               tr=6, te=2.4)),
    ("dixon_opp", "t1_vibe_dixon_tra_opp", attrs(scanning="GR", image_type="ORIGINAL\\PRIMARY\\DIXON\\OPP_PHASE",
                                                 tr=6, te=2.4)),
    ("dwi", "ep2d_diff_tra", attrs(scanning="EP", options="FS", seqname="*ep_b1000t", tr=5200, te=70,
                                   DiffusionBValue=1000)),
    ("localizer", "localizer", attrs(scanning="GR", variant="SP", seqname="*fl2d1", tr=8.6, te=4)),
    # GE
    ("t1", "Cor T1 FSE", attrs(options="FAST_GEMS\\EDR_GEMS", seqname="fse-xl_208", tr=700, te=14)),
    ("t2fs", "Ax T2 FSE FS", attrs(options="FAST_GEMS\\EDR_GEMS\\FS", tr=4000, te=85)),
    ("stir", "Cor STIR", attrs(scanning="SE\\IR", options="FAST_GEMS\\EDR_GEMS\\IR_GEMS", tr=4500, te=40, ti=170)),
    ("dixon_water", "WATER: Ax LAVA-Flex", attrs(scanning="GR", image_type="DERIVED\\PRIMARY", tr=4, te=1.7)),
    ("dixon_fat", "FAT: Ax LAVA-Flex", attrs(scanning="GR", image_type="DERIVED\\PRIMARY", tr=4, te=1.7)),
    ("dixon_in", "InPhase: Ax LAVA-Flex", attrs(scanning="GR", image_type="DERIVED\\PRIMARY", tr=4, te=1.7)),
    ("dixon_opp", "OutPhase: Ax LAVA-Flex", attrs(scanning="GR", image_type="DERIVED\\PRIMARY", tr=4, te=1.7)),
    ("dwi", "Ax DWI", attrs(scanning="EP\\SE", options="SAT_GEMS\\EPI_GEMS\\FS", tr=6000, te=75)),
    ("localizer", "3-Plane Loc", attrs(scanning="GR", options="FAST_GEMS", tr=5, te=1.5,
                                       image_type="ORIGINAL\\PRIMARY\\LOCALIZER")),
    # Philips
    ("t1", "T1W_TSE_COR", attrs(image_type="ORIGINAL\\PRIMARY\\M_SE\\M\\SE", seqname="TSE", tr=550, te=10)),
    ("t2fs", "T2W_TSE_SPAIR", attrs(image_type="ORIGINAL\\PRIMARY\\M_SE\\M\\SE", tr=3500, te=70)),
    ("stir", "STIR_COR", attrs(scanning="IR", image_type="ORIGINAL\\PRIMARY\\M_IR\\M\\IR", tr=4000, te=50, ti=200)),
    ("dixon_water", "mDIXON_TSE", attrs(image_type="ORIGINAL\\PRIMARY\\W_SE\\W\\SE", tr=600, te=10)),
    ("dixon_fat", "mDIXON_TSE", attrs(image_type="ORIGINAL\\PRIMARY\\F_SE\\F\\SE", tr=600, te=10)),
    ("dixon_in", "mDIXON_TSE_IP", attrs(image_type="ORIGINAL\\PRIMARY\\IP_SE\\IP\\SE", tr=600, te=10)),
    ("dixon_opp", "mDIXON_TSE_OP", attrs(image_type="ORIGINAL\\PRIMARY\\OP_SE\\OP\\SE", tr=600, te=10)),
    ("dwi", "DWI_b800", attrs(scanning="SE", variant="SK", image_type="ORIGINAL\\PRIMARY\\M_SE\\M\\SE", tr=4000,
                              te=60, DiffusionBValue=800)),
    ("localizer", "Survey", attrs(scanning="GR", image_type="ORIGINAL\\PRIMARY\\M_FFE\\M\\FFE", tr=11, te=4.6)),
]


@pytest.mark.parametrize("role,description,attributes", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_vendor_styles(role, description, attributes):
    got, reason = classify_series(attributes, description)
    assert got == role, reason
    assert reason


def test_flair_and_t2_without_fat_sat_are_other():
    assert classify_series(attrs(scanning="IR", tr=9000, te=90, ti=2500), "t2_tirm_tra_dark-fluid")[0] == "other"
    role, reason = classify_series(attrs(tr=4000, te=90), "t2_tse_tra")
    assert role == "other" and "without fat suppression" in reason


def test_imagetype_outranks_description():
    """Tie-break: ImageType DIXON\\FAT beats a description that reads like T1."""
    role, reason = classify_series(attrs(image_type="DERIVED\\PRIMARY\\DIXON\\FAT", tr=600, te=10), "t1_tse_tra")
    assert role == "dixon_fat" and "ImageType" in reason


def test_inversion_time_outranks_description_and_tr_te():
    role, reason = classify_series(attrs(scanning="SE\\IR", tr=600, te=10, ti=180), "t1_tse_cor")
    assert role == "stir" and "TI=180" in reason


def test_sidecar_style_strings_and_missing_values():
    """dcm2niix sidecars join tokens with '_' and may lack TR/TE: classification still works on strings."""
    assert classify_series({"ImageType": "DERIVED\\PRIMARY\\DIXON\\WATER"}, "x")[0] == "dixon_water"
    assert classify_series({}, "t2_stir_cor")[0] == "stir"
    role, reason = classify_series({}, "unknown")
    assert role == "other" and "no rule matched" in reason
