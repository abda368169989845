"""One-shot character recognition problems as a batched generator (torch): Meta-SpikePropamine
(Schmidgall & Hays 2022), "Recognizing novel character classes from a single example",
"Experimental setup".

A problem has ``1 + n_way`` presentation slots of ``present_steps`` steps each (1 step = 1 ms):

* phase 1, slot 0: one image of the problem's class, with neuromodulation on (the NM-SNN's signal
  reaches the plastic network only here);
* phase 2, slots 1 .. n_way: a *different* sample of the same class and one sample each of
  ``n_way - 1`` other classes (distinct from it and from each other), in random order.

Paper values: 20 steps per image, ``n_way = 5``, 120 steps. The classes are drawn uniformly from
one split (training or testing classes) of a :class:`plastix.tasks.glyphs.GlyphSet` (the Omniglot
stand-in or Omniglot). The answer is the phase-2 slot with the highest output activity
(:func:`score_one_shot_glyphs`). Everything for a batch is drawn at once from an explicit
``torch.Generator``, with index tensors (no loop over the batch).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from plastix.tasks.glyphs import GlyphSet

Tensor = torch.Tensor
SPLITS = ("train", "test")


@dataclass(frozen=True)
class OneShotGlyphConfig:
    """Timing and size of a one-shot character problem (defaults: the paper's)."""

    present_steps: int = 20  # steps per image (1 ms each)
    n_way: int = 5           # phase-2 images: one of the phase-1 class, n_way - 1 of other classes
    split: str = "train"     # "train" or "test": the classes problems are drawn from

    def __post_init__(self) -> None:
        if self.present_steps < 1:
            raise ValueError(f"OneShotGlyphConfig.present_steps: {self.present_steps}, need >= 1")
        if self.n_way < 2:
            raise ValueError(f"OneShotGlyphConfig.n_way: {self.n_way}, need >= 2")
        if self.split not in SPLITS:
            raise ValueError(f"OneShotGlyphConfig.split: {self.split!r}; known: {list(SPLITS)}")

    @property
    def n_slots(self) -> int:
        return 1 + self.n_way

    @property
    def total_steps(self) -> int:
        return self.n_slots * self.present_steps


class GlyphProblems(NamedTuple):
    """A batch of problems. ``images`` (B, 1 + n_way, 28, 28): slot 0 is the phase-1 image, slots
    1 .. n_way the phase-2 images in presentation order; ``slot_of_step`` (T,) long: the slot shown
    at step t (so ``images[:, slot_of_step]`` is the (B, T, 28, 28) input movie); ``modulation_on``
    (T,) bool: phase 1; ``target`` (B,) long in 0 .. n_way - 1: the phase-2 slot (image
    ``1 + target``) showing the phase-1 class; ``classes`` / ``samples`` (B, 1 + n_way) long: class
    and sample index of every slot's image in the :class:`GlyphSet`."""

    images: Tensor
    slot_of_step: Tensor
    modulation_on: Tensor
    target: Tensor
    classes: Tensor
    samples: Tensor


class OneShotScore(NamedTuple):
    """``prediction`` (B,) long: the phase-2 slot (0 .. n_way - 1) with the most summed activity;
    ``accuracy``: 0-d float tensor, the fraction of problems with ``prediction == target``."""

    prediction: Tensor
    accuracy: Tensor


def one_shot_glyph_problems(batch: int, glyphs: GlyphSet, cfg: OneShotGlyphConfig | None = None, *,
                            generator: torch.Generator, device: str | torch.device = "cpu") -> GlyphProblems:
    """Sample ``batch`` one-shot character problems from ``glyphs`` (see the module docstring)."""
    cfg = cfg if cfg is not None else OneShotGlyphConfig()
    g, k = generator, cfg.n_way
    pool = glyphs.classes_of(cfg.split)
    if len(pool) < k:
        raise ValueError(f"one_shot_glyph_problems: split {cfg.split!r} has {len(pool)} classes, n_way = {k} needs {k}")
    n_samples = glyphs.n_samples
    # candidates: column 0 the problem's class, columns 1.. the distractors (distinct, uniform)
    cand = pool[torch.multinomial(torch.ones(batch, len(pool)), k, replacement=False, generator=g)]
    first = torch.randint(0, n_samples, (batch,), generator=g)
    match = (first + torch.randint(1, n_samples, (batch,), generator=g)) % n_samples  # another sample
    others = torch.randint(0, n_samples, (batch, k - 1), generator=g)
    cand_samples = torch.cat([match[:, None], others], dim=1)
    order = torch.rand(batch, k, generator=g).argsort(dim=1)  # phase-2 slot j shows candidate order[:, j]
    target = (order == 0).long().argmax(dim=1)
    classes = torch.cat([cand[:, :1], cand.gather(1, order)], dim=1)
    samples = torch.cat([first[:, None], cand_samples.gather(1, order)], dim=1)
    slot_of_step = torch.arange(cfg.total_steps) // cfg.present_steps
    return GlyphProblems(images=glyphs.images[classes, samples].to(device), slot_of_step=slot_of_step.to(device),
                         modulation_on=(slot_of_step == 0).to(device), target=target.to(device),
                         classes=classes.to(device), samples=samples.to(device))


def score_one_shot_glyphs(activity: Tensor, problems: GlyphProblems) -> OneShotScore:
    """Answer and accuracy from per-step output activity ``activity`` (T, B) (or (T, B, 1)): the
    phase-2 slot whose steps have the largest summed activity (ties: the earliest slot)."""
    if activity.ndim == 3 and activity.shape[-1] == 1:
        activity = activity[..., 0]
    steps, batch = problems.slot_of_step.shape[0], problems.target.shape[0]
    if tuple(activity.shape) != (steps, batch):
        raise ValueError(f"score_one_shot_glyphs: activity {tuple(activity.shape)}, "
                         f"expected (T, B) = ({steps}, {batch})")
    n_slots = problems.images.shape[1]
    per_slot = F.one_hot(problems.slot_of_step, n_slots).T.to(activity.dtype) @ activity  # (1 + n_way, B)
    prediction = per_slot[1:].argmax(dim=0)
    return OneShotScore(prediction=prediction, accuracy=(prediction == problems.target).float().mean())
