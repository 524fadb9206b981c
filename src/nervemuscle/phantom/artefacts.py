"""Tissue details and acquisition artefacts of the adult anatomy family.

Applied by :func:`nervemuscle.phantom.acquisition.acquire` when the subject's anatomy carries
:class:`ImageEffects` (the classic family carries none and is unchanged):

* lymph nodes (painted as soft tissue in the label map) get node relaxation times;
* roots and trunks get a fascicular texture: a zero-mean speckle of about fascicle size that modulates
  their water signal (the mean signal, hence the truth T2 ratio, is kept);
* incomplete spectral fat suppression at the neck-chest junction (air-tissue susceptibility at the lung
  apices and supraclavicular fossae): the residual fat fraction of T2 fat-sat series rises there;
* coil shading: a posterior spine coil and an anterior neck coil, signal falling off with depth;
* pulsation ghosts of the great vessels and a motion ghost of the whole image along the phase-encoding
  axis (left-right).

Shading and ghosts are skipped for ``noise_free`` images, like noise and bias. Sources and assumptions:
docs/phantom.md ("The adult family").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from nervemuscle.anatomy import TISSUE_LABELS
from nervemuscle.phantom.signal import Tissue, compartment_signals

#: Lymph node relaxation (PD, T1 ms, T2 ms) per field: engineering assumption [A] between muscle and
#: fluid, so nodes are bright on T2 fat-sat and STIR like roots (the classic look-alike).
NODE_TISSUE = {1.5: (0.9, 1000.0, 80.0), 3.0: (0.9, 1250.0, 75.0)}


@dataclass(frozen=True)
class ImageEffects:
    """Per-subject parameters of tissue details and artefacts (drawn with the adult body).

    ``fat_sat_failure``: extra residual fat fraction at the neck-chest junction (centre ``junction_z``,
    half-width ``junction_mm``); ``coil_gain``/``coil_depth_mm``: coil shading amplitude and fall-off;
    ``ghost_amp``/``ghost_shift``: pulsation ghost amplitude (fraction of muscle signal) and spacing
    (fraction of the field of view); ``motion_amp``: whole-image motion ghost amplitude; ``texture``:
    fascicular contrast (relative SD of the root signal); ``nodes``: ``[(centre, semi), ...]`` world mm.
    """

    fat_sat_failure: float
    junction_z: float
    junction_mm: float
    coil_gain: float
    coil_depth_mm: float
    ghost_amp: float
    ghost_shift: float
    motion_amp: float
    texture: float
    nodes: tuple
    seed: int

    def tissue(self, subject, acq, grid, labels: np.ndarray, water: np.ndarray, fat: np.ndarray):
        """Node signal and fascicular texture on world-ascending (water, fat) arrays of one series."""
        from nervemuscle.phantom.acquisition import SIGNAL_SCALE

        field = subject.field_strength
        x, y, z = (c.astype(np.float32) for c in grid.centers)
        node = np.zeros(labels.shape, bool)
        for centre, semi in self.nodes:
            dx = ((x - centre[0]) / semi[0])[:, None, None] ** 2
            dy = ((y - centre[1]) / semi[1])[None, :, None] ** 2
            dz = ((z - centre[2]) / semi[2])[None, None, :] ** 2
            node |= dx + dy + dz <= 1.0
        node &= labels == TISSUE_LABELS["soft_tissue"]
        if node.any():
            w, f = compartment_signals(Tissue(*NODE_TISSUE[float(field)]), kind=acq.signal_kind, tr=acq.tr_ms,
                                       te=acq.te_ms, ti=acq.ti_at(field), field_strength=field)
            water = np.where(node, w * SIGNAL_SCALE, water)
            fat = np.where(node, f * SIGNAL_SCALE, fat)
        nerve = (labels >= 40) & (labels < 60) | (labels == TISSUE_LABELS["nerve_trunk"])
        if self.texture > 0 and nerve.any():
            rng = np.random.default_rng(self.seed)
            speckle = ndimage.gaussian_filter(rng.standard_normal(labels.shape).astype(np.float32), 0.6)
            speckle /= max(float(speckle.std()), 1e-6)
            mod = 1.0 + self.texture * np.clip(speckle, -2.5, 2.5)
            water = np.where(nerve, water * mod, water)
        return water, fat

    def fat_residual(self, grid, residual: tuple) -> np.ndarray:
        """Residual fat fraction of a fat-saturated series: the usual centre-to-edge rise plus the junction."""
        centre, edge = residual
        x = grid.centers[0][:, None, None]
        z = grid.centers[2][None, None, :]
        base = centre + (edge - centre) * (x / 200.0) ** 2
        lateral = 0.3 + 0.7 * np.clip(np.abs(x) / 120.0, 0.0, 1.0)
        bump = self.fat_sat_failure * lateral * np.exp(-0.5 * ((z - self.junction_z) / self.junction_mm) ** 2)
        return np.clip(base + bump, 0.0, 1.0) + np.zeros((1, len(grid.centers[1]), 1))

    def corrupt(self, img: np.ndarray, grid, labels: np.ndarray, reference: float) -> np.ndarray:
        """Coil shading and ghosts on a world-ascending magnitude image (before noise)."""
        lo, hi = grid.bounds
        body = labels > 0
        ys = grid.centers[1]
        occupied = np.flatnonzero(body.any(axis=(0, 2)))
        y_back = ys[occupied[0]] if occupied.size else lo[1]
        y_front = ys[occupied[-1]] if occupied.size else hi[1]
        y = ys[None, :, None]
        x = grid.centers[0][:, None, None]
        sens = (np.exp(-np.clip(y - y_back, 0, None) / self.coil_depth_mm)
                + 0.6 * np.exp(-np.clip(y_front - y, 0, None) / self.coil_depth_mm))
        sens = sens * (1.0 - 0.3 * np.clip(np.abs(x) / 200.0, 0, 1) ** 2)
        shading = 1.0 + self.coil_gain * (sens - np.median(np.broadcast_to(sens, labels.shape)[body]) if body.any() else sens)
        out = img * np.clip(shading, 0.3, None)
        n = labels.shape[0]
        shift = max(1, int(round(self.ghost_shift * n)))
        vessels = np.isin(labels, (TISSUE_LABELS["artery"], TISSUE_LABELS["vein"])).astype(np.float32) * reference
        for k, amp in ((1, 1.0), (2, 0.5)):
            for sgn in (1, -1):
                out = out + self.ghost_amp * amp * np.roll(vessels, sgn * k * shift, axis=0)
        if self.motion_amp > 0:
            d = max(1, n // 5)
            out = out + self.motion_amp * 0.5 * (np.roll(img, d, axis=0) + np.roll(img, -d, axis=0))
        return out


def draw_effects(rng: np.random.Generator, junction_z: float, nodes: tuple, seed: int) -> ImageEffects:
    """Draw the tissue details and artefact strengths of one subject."""
    return ImageEffects(
        fat_sat_failure=float(rng.uniform(0.03, 0.15)),
        junction_z=float(junction_z + rng.uniform(-10, 10)),
        junction_mm=float(rng.uniform(12, 25)),
        coil_gain=float(rng.uniform(0.15, 0.5)),
        coil_depth_mm=float(rng.uniform(60, 120)),
        ghost_amp=float(rng.uniform(0.02, 0.08)),
        ghost_shift=float(rng.uniform(0.08, 0.2)),
        motion_amp=float(rng.choice([0.0, rng.uniform(0.01, 0.04)])),
        texture=float(rng.uniform(0.12, 0.3)),
        nodes=tuple(nodes),
        seed=int(seed),
    )
