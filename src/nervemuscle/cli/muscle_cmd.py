"""``nervemuscle export-nnunet``: images + muscle label maps as an nnU-Net v2 raw dataset."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import typer

from nervemuscle.errors import BadInputError
from nervemuscle.outputs import refuse_overlap


def _read_manifest(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise BadInputError(f"cannot read the manifest ({exc.strerror})", path) from None
    if not rows or not {"case", "labels", "image0"} <= set(rows[0]):
        raise BadInputError("manifest must be a CSV with columns case,labels,image0[,image1...]", path)
    return rows


def export_from_manifest(manifest: Path, out_dir: Path, *, dataset_id: int, name: str,
                         label_names: Path | None, channel_names: list[str] | None) -> Path:
    """Load the NIfTI files listed in ``manifest`` and export them (paths relative to the manifest); a dataset
    folder that would replace, contain or lie inside an input is refused first (OutputError)."""
    from nervemuscle.muscle import export_nnunet
    from nervemuscle.muscle.external import relabel
    from nervemuscle.volume import Volume

    names = None
    if label_names is not None:
        try:
            names = {int(k): str(v) for k, v in json.loads(label_names.read_text()).items()}
        except (OSError, ValueError) as exc:
            raise BadInputError(f"label names must be a JSON object {{code: name}} ({exc})", label_names) from None
    base = manifest.parent
    rows = _read_manifest(manifest)
    refuse_overlap(Path(out_dir) / f"Dataset{dataset_id:03d}_{name}",
                   [manifest, label_names, *(base / v for row in rows for k, v in row.items()
                                             if v and (k == "labels" or k.startswith("image")))])
    exams = []
    for row in rows:
        image_cols = sorted((k for k in row if k.startswith("image") and row[k]), key=lambda k: int(k[5:]))
        images = []
        for i, col in enumerate(image_cols):
            vol = Volume.load(base / row[col])
            role = channel_names[i] if channel_names and i < len(channel_names) else col
            images.append(vol.with_data(vol.data, role=role))
        labels = Volume.load(base / row["labels"])
        exams.append((row["case"], images, relabel(labels, names, labels)))
    return export_nnunet(exams, out_dir, dataset_id=dataset_id, name=name)


def register(app: typer.Typer) -> None:
    @app.command("export-nnunet")
    def export_nnunet_cmd(
        manifest: Path = typer.Argument(..., readable=False,
                                        help="CSV with columns case,labels,image0[,image1...] (NIfTI paths)."),
        out: Path = typer.Argument(..., help="nnU-Net raw folder; the dataset is written inside it."),
        dataset_id: int = typer.Option(501, help="nnU-Net dataset number."),
        name: str = typer.Option("ShoulderGirdle", help="nnU-Net dataset name."),
        label_names: Path = typer.Option(None, readable=False,
                                         help="JSON {code: name} of the label maps (default: nervemuscle codes)."),
        channels: str = typer.Option("T1", help="Comma-separated channel names in image column order."),
    ) -> None:
        """Export images + muscle label maps as an nnU-Net v2 raw dataset (imagesTr, labelsTr, dataset.json)."""
        folder = export_from_manifest(manifest, out, dataset_id=dataset_id, name=name, label_names=label_names,
                                      channel_names=[c.strip() for c in channels.split(",") if c.strip()])
        typer.echo(str(folder))
