"""The training loss: the recipe's class Dice + focal, and the optional per-slice compartment Dice and fat split."""

import numpy as np
import pytest
import torch

from ParaspinalSegLib.labels import LEFT_FAT, LEFT_MUSCLE, RIGHT_FAT, RIGHT_MUSCLE
from ParaspinalSegTrainingLib.config import TrainingConfig
from ParaspinalSegTrainingLib.training import compartment_dice_loss, fat_split_loss, loss_function


def confident_logits(target: torch.Tensor, margin: float = 30.0) -> torch.Tensor:
    """Logits that put the truth's class far above the others at every pixel."""
    return torch.nn.functional.one_hot(target, 5).permute(0, 3, 1, 2).float() * margin


def square(side: int, label: int, shape: int = 64) -> torch.Tensor:
    """A label map holding one side x side square of `label`."""
    out = torch.zeros(shape, shape, dtype=torch.long)
    out[8:8 + side, 8:8 + side] = label
    return out


def test_compartment_dice_is_zero_on_a_right_answer_and_one_on_a_missed_compartment():
    target = square(20, RIGHT_MUSCLE)[None]
    target[0, 40:50, 40:50] = LEFT_FAT
    assert compartment_dice_loss(confident_logits(target), target).item() == pytest.approx(0.0, abs=1e-3)
    missed = torch.zeros_like(target)
    loss = compartment_dice_loss(confident_logits(missed), target).item()
    assert loss == pytest.approx(1.0, abs=0.01)


def test_muscle_called_fat_inside_the_compartment_costs_nothing():
    """The term scores the compartment, whatever the split into muscle and fat inside it."""
    target = square(20, RIGHT_MUSCLE)[None]
    as_fat = torch.where(target == RIGHT_MUSCLE, RIGHT_FAT, 0)
    assert compartment_dice_loss(confident_logits(as_fat), target).item() == pytest.approx(0.0, abs=1e-3)
    swapped = torch.where(target == RIGHT_MUSCLE, LEFT_MUSCLE, 0)  # the wrong side scores as a miss
    assert compartment_dice_loss(confident_logits(swapped), target).item() == pytest.approx(1.0, abs=0.01)


def test_a_small_compartment_missed_weighs_as_much_as_a_large_one_found():
    """Per slice: a missed 4x4 compartment beside a found 40x40 one gives about half the loss, where the
    class Dice over the batch barely notices it."""
    target = torch.stack([square(40, RIGHT_MUSCLE), square(4, RIGHT_MUSCLE)])
    predicted = target.clone()
    predicted[1] = 0
    per_slice = compartment_dice_loss(confident_logits(predicted), target).item()
    assert per_slice == pytest.approx((0.0 + (1 - 1 / 17)) / 2, abs=0.01)  # smoothing 1: 1 - 1/(16 + 1)
    from segmentation_models_pytorch.losses import DiceLoss

    over_batch = DiceLoss("multiclass", from_logits=True, classes=[RIGHT_MUSCLE])(confident_logits(predicted), target)
    assert over_batch.item() < 0.02


@pytest.mark.parametrize("setting, term, weight", [("compartment_dice_weight", compartment_dice_loss, 0.5),
                                                    ("fat_split_weight", fat_split_loss, 2.0)])
def test_each_term_is_off_by_default_and_adds_its_weight_when_on(setting, term, weight):
    rng = np.random.default_rng(0)
    target = torch.from_numpy(rng.integers(0, 5, size=(2, 32, 32)))
    logits = torch.from_numpy(rng.normal(size=(2, 5, 32, 32))).float().requires_grad_()
    plain = loss_function(TrainingConfig())(logits, target)
    weighted = loss_function(TrainingConfig(**{setting: weight}))(logits, target)
    assert weighted.item() == pytest.approx(plain.item() + weight * term(logits, target).item(), rel=1e-6)
    weighted.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("term", [compartment_dice_loss, fat_split_loss])
def test_a_batch_without_any_compartment_gives_zero_and_a_gradient(term):
    target = torch.zeros(2, 16, 16, dtype=torch.long)
    logits = torch.randn(2, 5, 16, 16, requires_grad=True)
    loss = term(logits, target)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None


def test_fat_split_is_zero_on_the_right_split_and_the_fat_share_when_fat_is_called_muscle():
    """A 10 x 10 right compartment whose upper 3 rows are fat (30 %): the right split costs nothing, all of it
    called muscle costs 0.30, all of it called fat 0.70."""
    target = square(10, RIGHT_MUSCLE)[None]
    target[0, 8:11, 8:18] = RIGHT_FAT
    assert fat_split_loss(confident_logits(target), target).item() == pytest.approx(0.0, abs=1e-4)
    as_muscle = torch.where(target == RIGHT_FAT, RIGHT_MUSCLE, target)
    assert fat_split_loss(confident_logits(as_muscle), target).item() == pytest.approx(0.30, abs=1e-4)
    as_fat = torch.where(target == RIGHT_MUSCLE, RIGHT_FAT, target)
    assert fat_split_loss(confident_logits(as_fat), target).item() == pytest.approx(0.70, abs=1e-4)


def test_fat_split_ignores_the_outline_and_averages_over_slices_and_sides():
    """Background called compartment outside the truth costs nothing here (the compartment Dice's job); each
    (slice, side) pair with a compartment counts once: a right side 20 % off and a left side exact give 0.10."""
    target = square(10, RIGHT_MUSCLE)[None]
    target[0, 40:50, 40:50] = LEFT_MUSCLE
    grown = target.clone()
    grown[0, 20:30, 8:18] = RIGHT_FAT
    assert fat_split_loss(confident_logits(grown), target).item() == pytest.approx(0.0, abs=1e-4)
    off = target.clone()
    off[0, 8:10, 8:18] = RIGHT_FAT  # 20 of 100 right pixels called fat where the truth has none
    assert fat_split_loss(confident_logits(off), target).item() == pytest.approx(0.10, abs=1e-4)
