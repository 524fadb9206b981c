"""Build the labelled T1 atlases of :mod:`nervemuscle.muscle.multiatlas` from normal phantom subjects.

``python -m nervemuscle.phantom.muscle_atlases OUT.npz [--anatomy FAMILY ...] [--seeds 1001 1002 ...]``

Each atlas is the noise-free axial T1 of one normal subject (:func:`nervemuscle.phantom.acquisition.acquire`)
with its label map, reduced to the coarse registration grid. Subjects are drawn from seeds that no
benchmark or test analyses (:data:`ATLAS_SEEDS`). The anatomy families and seeds are recorded in the
file's provenance, so an evaluation can tell which family an atlas set was built on and judge it on the
other (leave-family-out).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from nervemuscle.muscle import tissue
from nervemuscle.muscle.multiatlas import LabelledAtlas, save_atlases, to_atlas
from nervemuscle.phantom.acquisition import acquire
from nervemuscle.phantom.subject import ANATOMY_FAMILIES, make_subject

#: Seeds of the atlas subjects (normal phenotype); shared with the earlier canonical atlas's seeds.
ATLAS_SEEDS = (1001, 1002, 1003, 1004)


def build_atlases(families: tuple[str, ...] = ("classic",), seeds: tuple[int, ...] = ATLAS_SEEDS
                  ) -> list[LabelledAtlas]:
    """One atlas per (family, seed): noise-free T1 + labels of a normal subject on the coarse grid."""
    atlases = []
    for family in families:
        for seed in seeds:
            image, labels = acquire(make_subject("normal", seed, anatomy=family), "t1_axial", noise_free=True)
            atlases.append(to_atlas(image, labels, tissue.classify(image), f"{family}-{seed}"))
    return atlases


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: build and write an atlas file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--anatomy", nargs="+", default=["classic"], choices=ANATOMY_FAMILIES,
                        help="anatomy families (default: classic)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(ATLAS_SEEDS))
    args = parser.parse_args(argv)
    atlases = build_atlases(tuple(args.anatomy), tuple(args.seeds))
    save_atlases(atlases, args.out, {"families": args.anatomy, "seeds": args.seeds,
                                     "phenotype": "normal", "series": "t1_axial, noise-free",
                                     "atlases": [a.name for a in atlases]})
    print(f"{len(atlases)} atlases -> {args.out}")


if __name__ == "__main__":
    main()
