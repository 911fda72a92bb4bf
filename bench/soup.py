"""A model whose weights are the weighted mean of other models' weights (a "model soup"); made 2.12.0.

    python bench/soup.py OUT WEIGHT=MODEL [WEIGHT=MODEL ...]
    paraspinal heldout OUT --data heldout --background-score-offset B

Averaging the weights of networks fine-tuned from one another (WiSE-FT and model soups, Wortsman et
al. 2022; SWAD, Cha et al. 2021) can hold better off the training distribution at no cost at run
time. The members must share architecture and preprocessing (2.4.0 -> 2.5.0 -> 2.6.0 are successive
fine-tunes). Floating-point tensors, BatchNorm running statistics included, are averaged in float32
and stored as float16; the card is the last member's (its postprocessing too), with a version and
description that name the soup's members (`paraspinal release` then gives it its own version and notes), and an ONNX graph is exported beside the weights. OUT must
not exist: nothing is overwritten.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path


def parse_member(text: str) -> tuple[float, Path]:
    weight, _, folder = text.partition("=")
    try:
        value = float(weight)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: needs WEIGHT=MODEL_FOLDER, e.g. 1=Resources/Models/NAME") from None
    if not folder or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: needs a positive weight and a model folder")
    return value, Path(folder)


def averaged_state(states: list[tuple[float, dict]]) -> dict:
    """The weighted mean of state dicts (weights normalised to sum 1); integer tensors (BatchNorm's
    step counters) are taken from the last member."""
    total = sum(weight for weight, _ in states)
    last = states[-1][1]
    return {key: sum((weight / total) * state[key].float() for weight, state in states) if value.is_floating_point()
            else value for key, value in last.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="new model folder")
    parser.add_argument("members", nargs="+", type=parse_member, help="WEIGHT=MODEL_FOLDER")
    args = parser.parse_args(argv)

    from ParaspinalSegLib.errors import ParaspinalError
    from ParaspinalSegLib.network.modelfile import load_model, save_model
    from ParaspinalSegTrainingLib.graphexport import add_graph

    try:
        if args.out.exists():
            raise ParaspinalError(f"{args.out}: already exists; choose a new folder")
        models = [(weight, load_model(folder)) for weight, folder in args.members]
        last = models[-1][1]
        if any(m.card.architecture != last.card.architecture or m.card.preprocessing != last.card.preprocessing
               for _, m in models):
            raise ParaspinalError("the members differ in architecture or preprocessing: their weights cannot be averaged")
        names = " + ".join(f"{weight:g} x {m.card.model_id}" for weight, m in models)
        last.network.load_state_dict(averaged_state([(weight, m.network.state_dict()) for weight, m in models]))
        card = dataclasses.replace(last.card, version=f"{last.card.version}-soup", graph=None,
                                   description=f"weight average (model soup) of {names}, for benchmarks only")
        save_model(args.out, last.network, card, half_precision=True)
        add_graph(args.out)
    except ParaspinalError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
