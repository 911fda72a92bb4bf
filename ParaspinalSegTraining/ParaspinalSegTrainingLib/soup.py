"""Weight averages ("model soups"): a new model whose weights are the weighted mean of other models' weights.

Averaging the weights of networks fine-tuned from one another or from one parent (WiSE-FT and model soups,
Wortsman et al. 2022; SWAD, Cha et al. 2021) can hold better off the training distribution at no cost at run
time: model 2.12.0 is the uniform soup of two sibling fine-tunes of 2.9.0. The members must share architecture
and preprocessing. Floating-point tensors, BatchNorm running statistics included, are averaged in float32 and
stored as float16; the card is the last member's (its postprocessing too), with a version and description that
name the members, and training data and settings that list each member's own under "soup_members" (`paraspinal
release` then gives it its own version and notes); an ONNX graph is exported beside the weights. The output folder
must not exist: nothing is overwritten.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ParaspinalSegLib.errors import InputError


def parse_member(text: str) -> tuple[float, Path]:
    """'WEIGHT=MODEL_FOLDER' as (weight, folder); a missing or non-positive weight or a missing folder is refused."""
    weight, _, folder = text.partition("=")
    try:
        value = float(weight)
    except ValueError:
        raise InputError(f"{text!r}: needs WEIGHT=MODEL_FOLDER, e.g. 1=Resources/Models/NAME") from None
    if not folder or not value > 0:
        raise InputError(f"{text!r}: needs a positive weight and a model folder")
    return value, Path(folder)


def averaged_state(states: list[tuple[float, dict]]) -> dict:
    """The weighted mean of state dicts (weights normalised to sum 1); integer tensors (BatchNorm's
    step counters) are taken from the last member."""
    total = sum(weight for weight, _ in states)
    last = states[-1][1]
    return {key: sum((weight / total) * state[key].float() for weight, state in states) if value.is_floating_point()
            else value for key, value in last.items()}


def members_record(models: list, field: str) -> dict:
    """One card field ("training_data" or "training_settings") of every member, with its model id and weight."""
    return {"soup_members": [{"model": model.card.model_id, "weight": weight, **getattr(model.card, field)}
                             for weight, model in models]}


def make_soup(out: Path, members: list[tuple[float, Path]]) -> str:
    """Write the weighted mean of the member models to the new folder `out`; returns the members as text."""
    from ParaspinalSegLib.network.modelfile import load_model

    from .graphexport import save_model_with_graph

    models = [(weight, load_model(folder)) for weight, folder in members]
    last = models[-1][1]
    if any(m.card.architecture != last.card.architecture or m.card.preprocessing != last.card.preprocessing
           for _, m in models):
        raise InputError("the members differ in architecture or preprocessing: their weights cannot be averaged")
    names = " + ".join(f"{weight:g} x {m.card.model_id}" for weight, m in models)
    last.network.load_state_dict(averaged_state([(weight, m.network.state_dict()) for weight, m in models]))
    card = dataclasses.replace(last.card, version=f"{last.card.version}-soup", graph=None,
                               description=f"weight average (model soup) of {names}; release it to give it its "
                                           "own version and notes",
                               training_data=members_record(models, "training_data"),
                               training_settings=members_record(models, "training_settings"))
    save_model_with_graph(out, last.network, card)
    return names
