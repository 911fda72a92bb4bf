"""Resumable training checkpoints without pickle: tensors in safetensors, the rest in JSON.

A checkpoint holds the network's weights, the optimizer's state tensors (flattened to names like
`optimizer.3.exp_avg`) and a JSON document with the epoch, the best validation score so far, and
the optimizer's parameter groups. Both files are written under temporary names, then renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ParaspinalSegLib.output.outputs import move_into_place, write_text_atomic

WEIGHTS = "checkpoint.safetensors"
STATE = "checkpoint.json"


def save_checkpoint(folder: Path, network, optimizer, state: dict) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"network.{k}": v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
    optimizer_state = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, values in optimizer_state["state"].items():
        for name, value in values.items():
            if hasattr(value, "detach"):
                tensors[f"optimizer.{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[name] = value
    handle, temporary = tempfile.mkstemp(prefix=".checkpoint.", dir=folder)
    os.close(handle)
    try:
        save_file(tensors, temporary)
        move_into_place(temporary, folder / WEIGHTS)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    document = {**state, "optimizer_groups": optimizer_state["param_groups"], "optimizer_scalars": scalars}
    write_text_atomic(folder / STATE, json.dumps(document, indent=2) + "\n")


def load_checkpoint(folder: Path, network, optimizer) -> dict | None:
    """Restore network and optimizer from `folder`; returns the saved state, or None if absent."""
    from safetensors.torch import load_file

    if not (folder / WEIGHTS).exists() or not (folder / STATE).exists():
        return None
    document = json.loads((folder / STATE).read_text())
    tensors = load_file(str(folder / WEIGHTS))
    network.load_state_dict({k[len("network."):]: v for k, v in tensors.items() if k.startswith("network.")})
    per_parameter: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            per_parameter.setdefault(int(index), {})[name] = value
    for index, values in document.pop("optimizer_scalars").items():
        per_parameter.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": per_parameter, "param_groups": document.pop("optimizer_groups")})
    return document
