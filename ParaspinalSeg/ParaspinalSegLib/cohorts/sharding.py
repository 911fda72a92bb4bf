"""Which share of a batch's studies one process runs: `--num-parts N --part-id K`, or a Slurm array.

A study belongs to part `sha256(name) mod N`, `name` being its entry in the batch folder (its path
relative to the batch root). The parts are disjoint and together cover the batch; a study's part
depends on its own name and N only, so it stays the same when studies are added or removed, and
every process of an array job computes the same split without talking to the others.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ParaspinalError

SLURM_TASK_ID = "SLURM_ARRAY_TASK_ID"
SLURM_TASK_COUNT = "SLURM_ARRAY_TASK_COUNT"
SLURM_TASK_MIN = "SLURM_ARRAY_TASK_MIN"


@dataclass(frozen=True)
class Shard:
    """Part `part_id` (0-based) of `num_parts`."""

    part_id: int = 0
    num_parts: int = 1

    @property
    def whole(self) -> bool:
        return self.num_parts == 1

    def holds(self, name: str) -> bool:
        return part_of_name(name, self.num_parts) == self.part_id

    def summary_name(self) -> str:
        """summary.csv for a whole batch, summary-part-K-of-N.csv for one part (K from 0)."""
        return "summary.csv" if self.whole else f"summary-part-{self.part_id:03d}-of-{self.num_parts:03d}.csv"

    def describe(self) -> str:
        return "" if self.whole else f"part {self.part_id} of {self.num_parts} (0-based)"


def part_of_name(name: str, num_parts: int) -> int:
    """The part a study of this name belongs to: the first 8 bytes of its name's SHA-256, modulo N."""
    digest = hashlib.sha256(os.fsencode(name)).digest()
    return int.from_bytes(digest[:8], "big") % num_parts


def _environment_int(environ: Mapping[str, str], name: str) -> int | None:
    text = environ.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ParaspinalError(f"the environment variable {name}={text!r} is not a whole number") from None


def choose_shard(num_parts: int | None, part_id: int | None, environ: Mapping[str, str] = os.environ) -> Shard:
    """The shard from --num-parts/--part-id; each one not given comes from a Slurm array job's
    SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN, so --array=1-8 works
    as 0-7), and without them the whole batch is one part."""
    slurm_id = _environment_int(environ, SLURM_TASK_ID)
    if num_parts is None:
        num_parts = _environment_int(environ, SLURM_TASK_COUNT) if slurm_id is not None else None
    if part_id is None and slurm_id is not None:
        part_id = slurm_id - (_environment_int(environ, SLURM_TASK_MIN) or 0)
    num_parts = num_parts or 1
    part_id = part_id or 0
    if num_parts < 1:
        raise ParaspinalError(f"--num-parts {num_parts}: give 1 or more")
    if not 0 <= part_id < num_parts:
        raise ParaspinalError(f"--part-id {part_id}: must lie between 0 and {num_parts - 1} for --num-parts "
                              f"{num_parts} (with Slurm, use a contiguous array such as --array=0-{num_parts - 1})")
    return Shard(part_id, num_parts)
