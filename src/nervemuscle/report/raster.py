"""Fast raster drawing for QC overlays and key images: numpy RGB composition, Pillow text and PNG writing.

Matplotlib's figure machinery costs seconds per exam; these images are plain pixel grids (grey image, label
fill and outlines, captions), so they are composed directly as ``uint8`` arrays.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Label codes are 0..59 (see ``nervemuscle.anatomy``); one stable colour per code.
N_LABEL_CODES = 64
#: Matplotlib's qualitative "tab20" palette (kept so colours match earlier reports).
TAB20 = ("1f77b4", "aec7e8", "ff7f0e", "ffbb78", "2ca02c", "98df8a", "d62728", "ff9896", "9467bd", "c5b0d5",
         "8c564b", "c49c94", "e377c2", "f7b6d2", "7f7f7f", "c7c7c7", "bcbd22", "dbdb8d", "17becf", "9edae5")
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
YELLOW = (255, 255, 0)


def hex_rgb(color: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` or ``"rrggbb"`` as an (r, g, b) tuple of 0..255."""
    color = color.lstrip("#")
    return tuple(int(color[i:i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


@lru_cache(maxsize=1)
def label_colors() -> np.ndarray:
    """``(N_LABEL_CODES, 3)`` uint8 colour per label code (code 0 black, unused: background is not drawn)."""
    colors = np.zeros((N_LABEL_CODES, 3), dtype=np.uint8)
    for code in range(1, N_LABEL_CODES):
        colors[code] = hex_rgb(TAB20[(code * 7) % 20])
    return colors


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.ImageFont:
    """DejaVu Sans (as matplotlib uses) at ``size`` pixels, else Pillow's bundled scalable font."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def panel_size(shape: tuple[int, int], pixel_mm: tuple[float, float], width: int) -> tuple[int, int]:
    """(width, height) in screen pixels of a displayed plane of ``shape`` (rows, cols) with ``pixel_mm``
    (row height, column width) in mm, ``width`` pixels wide and true to physical aspect."""
    height_mm, width_mm = shape[0] * pixel_mm[0], shape[1] * pixel_mm[1]
    return width, max(1, int(round(width * height_mm / max(width_mm, 1e-6))))


def grey(plane: np.ndarray, vmin: float, vmax: float, size: tuple[int, int]) -> np.ndarray:
    """``plane`` windowed to [vmin, vmax], bilinearly resized to ``size`` (w, h): (h, w, 3) uint8 RGB."""
    scaled = np.clip((np.asarray(plane, dtype=np.float32) - vmin) / max(vmax - vmin, 1e-6), 0.0, 1.0)
    img = Image.fromarray(scaled, mode="F").resize(size, Image.BILINEAR)
    g = (np.asarray(img) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Label plane resized to ``size`` (w, h) by nearest neighbour (codes modulo ``N_LABEL_CODES``)."""
    codes = (np.asarray(labels).astype(np.int64) % N_LABEL_CODES).astype(np.uint8)
    return np.asarray(Image.fromarray(codes, mode="L").resize(size, Image.NEAREST))


def edges(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of labelled pixels that touch a pixel of another label (4-neighbourhood)."""
    lab = np.asarray(labels)
    padded = np.pad(lab, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = ((padded[:-2, 1:-1] != centre) | (padded[2:, 1:-1] != centre)
               | (padded[1:-1, :-2] != centre) | (padded[1:-1, 2:] != centre))
    return (lab > 0) & differs


def thicken(mask: np.ndarray) -> np.ndarray:
    """``mask`` grown by one pixel (4-neighbourhood)."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def blend_labels(rgb: np.ndarray, labels: np.ndarray, rim: np.ndarray, *, alpha: float = 0.35) -> np.ndarray:
    """Each label region of ``labels`` (same h, w as ``rgb``) filled semi-transparently, ``rim`` pixels opaque."""
    colors = label_colors()[labels].astype(np.float32)
    out = rgb.astype(np.float32)
    inside = labels > 0
    out[inside] = (1.0 - alpha) * out[inside] + alpha * colors[inside]
    rim = rim & inside
    out[rim] = colors[rim]
    return (out + 0.5).astype(np.uint8)


def text_width(text: str, size: int) -> int:
    """Rendered width of ``text`` in pixels."""
    left, _, right, _ = font(size).getbbox(text)
    return int(right - left)


def legend_height(items: list[tuple[tuple[int, int, int], str]], width: int, size: int = 11) -> int:
    """Height in pixels of :func:`draw_legend` for ``items`` wrapped into ``width``."""
    return 0 if not items else _legend_rows(items, width, size) * (size + 6) + 6


def _legend_rows(items: list[tuple[tuple[int, int, int], str]], width: int, size: int) -> int:
    rows, x = 1, 0
    for _, name in items:
        w = size + 4 + text_width(name, size) + 14
        if x and x + w > width:
            rows, x = rows + 1, 0
        x += w
    return rows


def draw_legend(draw: ImageDraw.ImageDraw, items: list[tuple[tuple[int, int, int], str]], left: int, top: int,
                width: int, size: int = 11) -> None:
    """Colour swatches with names, wrapped into rows of ``width`` pixels starting at (left, top)."""
    x, y = 0, top + 3
    for color, name in items:
        w = size + 4 + text_width(name, size) + 14
        if x and x + w > width:
            x, y = 0, y + size + 6
        draw.rectangle([left + x, y, left + x + size, y + size], fill=color)
        draw.text((left + x + size + 4, y - 1), name, fill=BLACK, font=font(size))
        x += w


def grid(panels: list[np.ndarray], captions: list[str], ncols: int, *, title: str = "",
         legend: list[tuple[tuple[int, int, int], str]] = (), footer: str = "", caption_size: int = 11,
         pad: int = 8) -> Image.Image:
    """Panels (h, w, 3 uint8; cells sized to the largest) in ``ncols`` columns on white, each captioned above
    and marked "R" (patient right) at its left edge, with an optional title, legend and footer line."""
    cell_w = max(p.shape[1] for p in panels)
    cell_h = max(p.shape[0] for p in panels)
    cap_lines = max((c.count("\n") + 1 for c in captions if c), default=0)
    cap_h = cap_lines * (caption_size + 3) + 4
    nrows = -(-len(panels) // ncols)
    width = ncols * cell_w + (ncols + 1) * pad
    title_h = 22 if title else 0
    legend_h = legend_height(list(legend), width - 2 * pad)
    footer_h = 16 if footer else 0
    height = title_h + nrows * (cell_h + cap_h + pad) + pad + legend_h + footer_h
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for n, panel in enumerate(panels):
        r, c = divmod(n, ncols)
        x = pad + c * (cell_w + pad) + (cell_w - panel.shape[1]) // 2
        y = title_h + pad + r * (cell_h + cap_h + pad) + cap_h
        canvas[y:y + panel.shape[0], x:x + panel.shape[1]] = panel
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((width / 2, 4), title, fill=BLACK, font=font(14), anchor="ma")
    for n, (panel, caption) in enumerate(zip(panels, captions)):
        r, c = divmod(n, ncols)
        x = pad + c * (cell_w + pad) + (cell_w - panel.shape[1]) // 2
        y = title_h + pad + r * (cell_h + cap_h + pad)
        draw.multiline_text((x + panel.shape[1] / 2, y), caption, fill=BLACK, font=font(caption_size),
                            anchor="ma", align="center", spacing=3)
        draw.text((x + 4, y + cap_h + panel.shape[0] / 2), "R", fill=YELLOW, font=font(12), anchor="lm")
    top = title_h + nrows * (cell_h + cap_h + pad) + pad
    if legend:
        draw_legend(draw, list(legend), pad, top, width - 2 * pad)
    if footer:
        draw.text((width / 2, top + legend_h + 2), footer, fill=BLACK, font=font(11), anchor="ma")
    return image


def save_png(image: Image.Image, path: str | Path) -> Path:
    """Write ``image`` as PNG with fast (level 1) compression."""
    path = Path(path)
    image.save(path, format="PNG", compress_level=1)
    return path
