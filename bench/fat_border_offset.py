"""Benchmark: `paraspinal heldout` with fat's odds over background raised at the compartments' border.

    python bench/fat_border_offset.py D MODEL --data heldout-wide --patients 24 [any `paraspinal heldout` option]

A report that chose nothing. Diagnosed on 2.19.0 (Recipes README, *Tested after 2.19.0's release: fat's odds
against background*): more true fat is called background than background is called fat, in every band of
patient fat. This runs `paraspinal heldout` with every class probability taken as the card would take it but
for one more offset D: each side's fat score raised by D before the softmax, and the fat/muscle split applied
at the card's offset + D, which leaves fat's odds over muscle exactly as the card makes them. What moves is the
compartment's odds over background, by (p_muscle + p_fat e^D) / (p_muscle + p_fat): almost e^D where the
network calls fat, hardly at all where it calls muscle. D = 0 is `paraspinal heldout` itself.
"""

from __future__ import annotations

import sys

import numpy as np

from ParaspinalSegLib.labels import LEFT_FAT, RIGHT_FAT
from ParaspinalSegLib.network import inference
from ParaspinalSegLib.network.model import Postprocessing
from ParaspinalSegLib.network.preprocess import softmax


def with_fat_border(offset: float):
    """`inference.class_probabilities` with each side's fat score raised by `offset` before the softmax and the
    fat/muscle split moved by as much, so that only the compartment's odds over background change."""

    def class_probabilities(scores: np.ndarray, post: Postprocessing) -> np.ndarray:
        raised = scores.copy()
        raised[:, 0] += post.background_score_offset
        raised[:, [RIGHT_FAT, LEFT_FAT]] += offset
        return inference.shift_fat_split(softmax(raised, axis=1), post.fat_score_offset + offset)

    return class_probabilities


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        offset = float(argv[0])
    except ValueError:
        print(f"fat_border_offset: {argv[0]!r} is not a number (the offset D comes first)", file=sys.stderr)
        return 2
    from ParaspinalSegLib.cli import main as paraspinal

    inference.class_probabilities = with_fat_border(offset)
    return paraspinal(["heldout", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
