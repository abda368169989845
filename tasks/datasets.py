"""Supervised data sets for the synaptic-RL reproductions (Bhargava, Rezaei & Lankarany 2022).

* :func:`decision_boundary` -- the paper's random 2-D decision-boundary matching task: a "target"
  2-100-1 tanh MLP with weights ~ U[-1, 1] and zero biases labels 2,000 points ~ U[-10, 10]^2 by
  the sign of its output.
* :func:`digits` -- scikit-learn's 8x8 digits (1,797 images, 64 inputs, 10 classes), a small
  *substitute* OCR set: it is not notMNIST and is much smaller (the paper's OCR nets have 784 inputs).
* :func:`notmnist_standin` -- a **stand-in for notMNIST, not notMNIST**: the real notMNIST
  (Bulatov 2011; the paper uses 18,720 28x28 letters A-J in many fonts) cannot be downloaded here.
  The stand-in renders the letters A-J with the fonts matplotlib ships (DejaVu, STIX, Computer
  Modern), applies a random affine jitter and pixel noise, and produces 28x28 greyscale images in
  [0, 1], generated deterministically from a seed. Numbers measured on it are not comparable to
  numbers on notMNIST.

Module level imports only torch and numpy (house rule); scikit-learn and matplotlib are imported
inside the builders that need them. Randomness comes only from the ``seed`` argument.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

NOTMNIST_LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True, eq=False)
class SupervisedData:
    """A train/validation split. ``kind`` says how to read ``y``:

    * ``"classes"``: ``y`` long ``(N,)`` class indices in ``[0, n_classes)``;
    * ``"sign"``: ``y`` float ``(N, 1)`` in {-1, +1} (binary, read from the sign of one output).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_valid: torch.Tensor
    y_valid: torch.Tensor
    n_classes: int
    kind: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("classes", "sign"):
            raise ValueError(f"SupervisedData.kind: {self.kind!r}, expected 'classes' or 'sign'")
        for split in ("train", "valid"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 2 or x.shape[0] != y.shape[0]:
                raise ValueError(f"SupervisedData.{split}: x {tuple(x.shape)} and y {tuple(y.shape)} do not match")

    @property
    def n_inputs(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_outputs(self) -> int:
        return 1 if self.kind == "sign" else self.n_classes


def _split(x: torch.Tensor, y: torch.Tensor, valid_fraction: float, g: torch.Generator):
    perm = torch.randperm(x.shape[0], generator=g)
    n_valid = int(round(valid_fraction * x.shape[0]))
    va, tr = perm[:n_valid], perm[n_valid:]
    return x[tr], y[tr], x[va], y[va]


# ---------------------------------------------------------------------------------------------
# decision boundary matching


def decision_boundary(*, seed: int, n_train: int = 2000, n_valid: int = 2000, hidden: int = 100,
                      x_range: float = 10.0) -> SupervisedData:
    """Points ~ U[-x_range, x_range]^2 labelled ``sign(target(x))`` by a random 2-``hidden``-1 tanh
    MLP (weights ~ U[-1, 1], biases 0), paper section 3. ``n_valid`` fresh points from the same
    distribution measure generalisation (the paper reports training-set accuracy only)."""
    g = torch.Generator().manual_seed(int(seed))
    w1 = torch.rand(hidden, 2, generator=g) * 2 - 1
    w2 = torch.rand(1, hidden, generator=g) * 2 - 1
    x = (torch.rand(n_train + n_valid, 2, generator=g) * 2 - 1) * x_range
    out = torch.tanh(torch.tanh(x @ w1.t()) @ w2.t())
    y = torch.where(out > 0, 1.0, -1.0)
    return SupervisedData("decision_boundary", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 2, "sign",
                          note=f"target 2-{hidden}-1 tanh MLP, seed {seed}")


# ---------------------------------------------------------------------------------------------
# scikit-learn digits


def digits(*, seed: int, valid_fraction: float = 0.25) -> SupervisedData:
    """scikit-learn's 8x8 digits scaled to [0, 1], random ``1 - valid_fraction`` / ``valid_fraction``
    split from ``seed`` (the paper's 75-25 split)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(int(seed))
    return SupervisedData("digits", *_split(x, y, valid_fraction, g), 10, "classes",
                          note="scikit-learn digits (8x8, 64 inputs); a substitute for notMNIST")


# ---------------------------------------------------------------------------------------------
# notMNIST stand-in

# Fonts that ship with matplotlib and have the Latin capitals (symbol/size-variant fonts excluded).
STANDIN_FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf", "cmmi10.ttf",
)


def _glyph_templates(canvas: int, box: int) -> tuple[torch.Tensor, list[str]]:
    """``(n_fonts, 10, canvas, canvas)`` float images in [0, 1]: each letter scaled (aspect kept)
    to fit a ``box`` x ``box`` square, centred. Fonts missing a letter are skipped."""
    import os

    import matplotlib
    from matplotlib.ft2font import FT2Font

    root = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    out, used = [], []
    for fname in STANDIN_FONTS:
        path = os.path.join(root, fname)
        if not os.path.exists(path):
            continue
        font = FT2Font(path)
        if any(font.get_char_index(ord(c)) == 0 for c in NOTMNIST_LETTERS):
            continue
        letters = []
        for c in NOTMNIST_LETTERS:
            font.set_size(48, 72)
            font.set_text(c, 0.0)
            font.draw_glyphs_to_bitmap(antialiased=True)
            img = torch.tensor(np.asarray(font.get_image()), dtype=torch.float32) / 255.0
            rows, cols = torch.nonzero(img > 0.05, as_tuple=True)
            img = img[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            h, w = img.shape
            scale = box / max(h, w)
            nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
            img = F.interpolate(img[None, None], size=(nh, nw), mode="area")[0, 0]
            tile = torch.zeros(canvas, canvas)
            top, left = (canvas - nh) // 2, (canvas - nw) // 2
            tile[top:top + nh, left:left + nw] = img
            letters.append(tile)
        out.append(torch.stack(letters))
        used.append(fname)
    if not out:
        raise RuntimeError("notmnist_standin: none of the matplotlib fonts could be loaded")
    return torch.stack(out), used


def render_notmnist_standin(*, seed: int, n: int, size: int = 28, noise: float = 0.08,
                            max_rotation_deg: float = 12.0, max_shear: float = 0.2, scale_range=(0.8, 1.1),
                            max_shift: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """``n`` images ``(n, size, size)`` in [0, 1] and labels ``(n,)`` (0..9 = A..J): a random font
    and letter per image, a random affine map (rotation, anisotropic scale, shear, shift as a
    fraction of the image) and Gaussian pixel noise, all drawn from ``seed``."""
    g = torch.Generator().manual_seed(int(seed))
    templates, fonts = _glyph_templates(canvas=2 * size, box=int(round(2 * size * 20 / 28)))
    n_fonts = templates.shape[0]
    labels = torch.randint(0, 10, (n,), generator=g)
    font_idx = torch.randint(0, n_fonts, (n,), generator=g)

    def uni(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=g)

    rot = uni(-1.0, 1.0) * math.radians(max_rotation_deg)
    sx, sy = uni(*scale_range), uni(*scale_range)
    shear = uni(-max_shear, max_shear)
    tx, ty = uni(-max_shift, max_shift) * 2, uni(-max_shift, max_shift) * 2
    cos, sin = torch.cos(rot), torch.sin(rot)
    # output -> input sampling map: inverse of (rotate . shear . scale); affine_grid maps output coords.
    a11, a12 = cos / sx, (sin + shear * cos) / sx
    a21, a22 = -sin / sy, (cos - shear * sin) / sy
    theta = torch.stack([torch.stack([a11, a12, tx], 1), torch.stack([a21, a22, ty], 1)], 1)
    src = templates[font_idx, labels].unsqueeze(1)
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    img = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
    contrast = uni(0.7, 1.0).view(n, 1, 1)
    img = img * contrast + noise * torch.randn(n, size, size, generator=g)
    return img.clamp_(0.0, 1.0), labels, fonts


def notmnist_standin(*, seed: int, n: int = 18720, valid_fraction: float = 0.25) -> SupervisedData:
    """**Stand-in for notMNIST** (not the real data set, which cannot be downloaded here): ``n``
    rendered 28x28 letters A-J (see :func:`render_notmnist_standin`), flattened to 784 inputs,
    with a random 75-25 train/validation split; everything from ``seed``. Default ``n`` matches
    the paper's 18,720 images."""
    img, labels, fonts = render_notmnist_standin(seed=seed, n=n)
    x = img.reshape(n, -1)
    g = torch.Generator().manual_seed(int(seed) + 1)
    return SupervisedData("notmnist_standin", *_split(x, labels, valid_fraction, g), 10, "classes",
                          note=f"notMNIST STAND-IN (rendered letters A-J, {len(fonts)} matplotlib fonts); "
                               "not the real notMNIST")


BUILDERS = {"decision_boundary": decision_boundary, "digits": digits, "notmnist_standin": notmnist_standin}


def build(name: str, *, seed: int) -> SupervisedData:
    """Build a data set by name (``BUILDERS.keys()``)."""
    try:
        fn = BUILDERS[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; known: {sorted(BUILDERS)}") from None
    return fn(seed=seed)
