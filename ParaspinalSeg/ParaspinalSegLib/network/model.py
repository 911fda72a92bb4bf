"""The segmentation network: a segmentation-models-pytorch U-Net described by a ModelArchitecture.

One input channel (the T2 slice), one output class per label of the project's scheme. Encoders are
built with `encoder_weights=None`: nothing is ever downloaded; weights come from model files.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..labels import SEGMENTS

NUM_CLASSES = 1 + len(SEGMENTS)


@dataclass(frozen=True)
class ModelArchitecture:
    """Everything needed to rebuild the network before loading its weights."""

    name: str = "Unet"
    encoder: str = "resnet18"
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32, 16)
    in_channels: int = 1
    classes: int = NUM_CLASSES

    def to_dict(self) -> dict:
        out = asdict(self)
        out["decoder_channels"] = list(self.decoder_channels)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelArchitecture:
        data = dict(data)
        data["decoder_channels"] = tuple(data.get("decoder_channels", cls.decoder_channels))
        return cls(**data)


ARCHITECTURES = {"Unet": "Unet", "UnetPlusPlus": "UnetPlusPlus", "FPN": "FPN"}


def build_network(architecture: ModelArchitecture):
    """A freshly initialised torch module for the architecture (no pretrained weights)."""
    import segmentation_models_pytorch as smp

    if architecture.name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture.name!r}; choose one of {sorted(ARCHITECTURES)}")
    kwargs = dict(
        encoder_name=architecture.encoder,
        encoder_depth=architecture.encoder_depth,
        encoder_weights=None,
        in_channels=architecture.in_channels,
        classes=architecture.classes,
    )
    if architecture.name != "FPN":
        kwargs["decoder_channels"] = list(architecture.decoder_channels)
    return getattr(smp, ARCHITECTURES[architecture.name])(**kwargs)


@dataclass(frozen=True)
class Preprocessing:
    """How a slice becomes network input: display orientation, resampled, cropped, normalised.

    resampling: "antialiased" (a finer slice is low-pass filtered as it is shrunk to the network's
    grid, so that a 0.4 mm matrix arrives no noisier than a 1.4 mm one) or "linear" (plain linear
    interpolation, what the models before 2.0 were trained with; a card without the field means it).
    """

    pixel_spacing_mm: float = 1.25
    input_size: int = 256
    normalisation: str = "percentile"  # map the slice's 1st..99th intensity percentile to 0..1
    percentiles: tuple[float, float] = (1.0, 99.0)
    resampling: str = "antialiased"

    def __post_init__(self) -> None:
        if self.resampling not in RESAMPLING:
            raise ValueError(f"preprocessing resampling {self.resampling!r}: choose one of {', '.join(RESAMPLING)}")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["percentiles"] = list(self.percentiles)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        data = {"resampling": "linear", **data}
        data["percentiles"] = tuple(data.get("percentiles", cls.percentiles))
        return cls(**data)


RESAMPLING = ("antialiased", "linear")


@dataclass(frozen=True)
class Postprocessing:
    """How class probabilities become labels, beyond the plain argmax.

    fat_score_offset: inside each compartment, the fat/muscle split asks fat's odds over muscle to
    exceed exp(offset) (0: the plain argmax); the compartment itself is untouched. It corrects a
    network that calls too much fat.
    background_score_offset: background's odds over every other class are multiplied by exp(offset)
    before the labels are taken, so a pixel joins a compartment only where its class beats background
    by that margin. It corrects a network that draws the compartments too large at borders it sees
    blurred (coarse pixels), where the probabilities change slowly and the border moves most.
    label_decision: "flat" takes the most probable of the five classes; "compartment_first" takes
    background, right or left compartment first (each side's muscle and fat summed), then fat or
    muscle inside it, so that a border pixel whose compartment probability is split between muscle
    and fat is not lost to background.
    fat_split: "per_pixel" calls a compartment pixel fat where fat's odds over muscle (after the offset)
    win; "expected_area" gives each side's compartment on a slice as many fat pixels as the sum of
    fat's share of its pixels' compartment probability, p_fat / (p_fat + p_muscle) after the offset,
    and gives them to the pixels with the highest share, so that fat the pixels average away (fine
    marbling seen as partial volume) still counts by its expected area; the compartments do not move.
    mirror_below_confidence: a slice whose compartment confidence (`inference.compartment_confidence`)
    is below it is segmented again mirrored left-right, sides swapped, and the two scores averaged
    (the test-time augmentation that `--mirror` applies to every slice), so the second look costs
    network time only where the network is unsure; 0 never does.
    All five are chosen on the held-out domains' selection draws (`paraspinal heldout --fat-score-offset
    / --background-score-offset / --label-decision / --fat-split / --mirror-below`); a card without a
    field means 0 for an offset or the threshold, "flat" for the decision and "per_pixel" for the split.
    """

    fat_score_offset: float = 0.0
    background_score_offset: float = 0.0
    label_decision: str = "flat"
    fat_split: str = "per_pixel"
    mirror_below_confidence: float = 0.0

    def __post_init__(self) -> None:
        for name, choices in (("label_decision", LABEL_DECISIONS), ("fat_split", FAT_SPLITS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"postprocessing {name} {getattr(self, name)!r}: choose from {', '.join(choices)}")
        for name in ("fat_score_offset", "background_score_offset"):
            value = getattr(self, name)
            if not (math.isfinite(value) and abs(value) <= MAX_FAT_SCORE_OFFSET):
                raise ValueError(f"postprocessing {name} {value!r}: needs a number from "
                                 f"-{MAX_FAT_SCORE_OFFSET:g} to {MAX_FAT_SCORE_OFFSET:g}")
        if not 0.0 <= self.mirror_below_confidence <= 1.0:
            raise ValueError(f"postprocessing mirror_below_confidence {self.mirror_below_confidence!r}: "
                             "needs a number from 0 to 1")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Postprocessing:
        return cls(**data)


LABEL_DECISIONS = ("flat", "compartment_first")
FAT_SPLITS = ("per_pixel", "expected_area")
MAX_FAT_SCORE_OFFSET = 5.0  # odds of about 150 to 1 (both offsets)

