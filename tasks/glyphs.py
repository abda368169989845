"""Character images for the one-shot character recognition task of Meta-SpikePropamine (Schmidgall &
Hays 2022, "Recognizing novel character classes from a single example"): a **generated stand-in
for Omniglot, not Omniglot**, and a loader for the real Omniglot folder if a user has one.

The paper uses Omniglot (1623 handwritten characters of 50 alphabets, 20 drawings each), adds the
rotations by 90, 180 and 270 degrees of every character as new classes (6492 classes) and splits
the classes 80 / 20 into training and testing classes. Omniglot cannot be downloaded here, so
:func:`build_glyph_standin` renders a stand-in with the same structure:

* **Alphabets** are Unicode scripts or parts of them (:data:`STANDIN_ALPHABETS`: Latin, Greek,
  Cyrillic, Armenian, Hebrew, Arabic, N'Ko, Lao, three Georgian scripts, five series of Canadian
  syllabics, Ogham, Tifinagh, Lisu, Old Italic, ...). Symbol blocks (box drawing, arrows, Braille,
  mathematical alphanumerics) are left out; Braille because its dots mean something only at their
  place in the cell, which centring the glyph loses.
* **Characters** are the letters of these ranges (general category Lu, Ll or Lo, without a Unicode
  decomposition, so no precomposed accented letters, ligatures or presentation forms) that the
  DejaVu fonts shipped with matplotlib really have (their ``cmap``, read with fontTools, else with
  matplotlib's FT2Font). Tiny marks (ink box below ``min_size_em`` of the em) are dropped. Then
  **visual duplicates are dropped over the whole set, not only within an alphabet**: a character
  whose canonical image (DejaVu Sans, 28 x 28) correlates above ``duplicate_threshold`` with a
  rotation by 0/90/180/270 degrees of a character kept before it is dropped (Latin A, Greek Alpha
  and Cyrillic A are one shape; Latin b turned by 180 degrees is q), and so is a character that
  matches its own rotation by 90 or 180 degrees (O, S, N, x, ...), so that the four rotated classes
  of every character are distinct and no two classes of the set share a shape. Alphabets left
  with fewer than ``min_alphabet_size`` characters are dropped.
* **Samples**: 20 per character, each a handwriting-like variant: a random DejaVu face among those
  that have the glyph (Sans, Sans Mono and Serif, regular / bold / oblique; the Serif italics are
  left out because their letter shapes differ from the upright ones), a random stroke width
  (grey-level erosion / dilation, blended), a random affine map (rotation, scale, aspect, shear,
  shift) and an elastic deformation (a random displacement field on a coarse grid, smoothed by
  bicubic upsampling). All samples are computed at once (in chunks) with torch at twice the output
  resolution and area-downsampled to 28 x 28 float32 in [0, 1], ink = 1, the glyph's box centred
  before the jitter. Images are quantised to multiples of 1/255 (the cache stores uint8).
* **Rotations**: each character gives four classes, the same 20 images turned by 0, 90, 180 and
  270 degrees counter-clockwise (class ``4 * character + k`` is turned by ``90 k`` degrees).
* **Split**: 80 / 20 of the *characters*, from the seed; the four rotations of a character are
  always on the same side, so no test class is a turned training class.

Everything comes from the ``seed``: the same seed gives bit-identical arrays (on one machine and
torch build; the cache carries them across). :func:`load_glyph_standin` keeps the generated arrays
in one ``.npz`` (written atomically) in ``cache_dir``, ``$PLASTIX_CACHE`` or ``~/.cache/plastix``.
:func:`load_omniglot_folder` reads the real Omniglot layout into the same :class:`GlyphSet`.

Numbers measured on the stand-in are not comparable to numbers on Omniglot: its shapes are typeset,
not drawn, and its within-class variation is synthetic.

Module level imports only the standard library, numpy, torch and ``plastix.ir`` (house rule);
Pillow, matplotlib and fontTools are imported inside the functions that need them.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from plastix.ir.atomic import new_file

Tensor = torch.Tensor

GLYPH_STANDIN_VERSION = 1  # bump whenever the generated arrays change; part of the cache file name
IMAGE_SIZE = 28
SAMPLES_PER_CLASS = 20
ROTATIONS = (0, 90, 180, 270)  # degrees counter-clockwise; class 4 * character + k is turned by ROTATIONS[k]
STANDIN_SOURCE = "generated stand-in (DejaVu fonts), not Omniglot"
OMNIGLOT_SOURCE = "omniglot folder"
DIGITS_SOURCE = "scikit-learn digits (8 x 8, upsampled), not MNIST"
CACHE_ENV = "PLASTIX_CACHE"

# DejaVu faces shipped with matplotlib; the first one gives the canonical shape of every character.
STANDIN_FACES = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
)

# (alphabet, half-open code point ranges). Order matters: of two duplicate shapes the earlier one stays.
STANDIN_ALPHABETS: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("Latin capitals", ((0x41, 0x5B),)),
    ("Latin small letters", ((0x61, 0x7B),)),
    ("Latin extended letters", ((0xC0, 0x250),)),
    ("IPA letters", ((0x250, 0x2B0),)),
    ("Latin phonetic small capitals", ((0x1D00, 0x1D80),)),
    ("Latin extended-C and -D letters", ((0x2C60, 0x2C80), (0xA720, 0xA800))),
    ("Greek capitals", ((0x391, 0x3AA),)),
    ("Greek small letters", ((0x3B1, 0x3CA),)),
    ("Greek archaic and Coptic letters", ((0x370, 0x391), (0x3CA, 0x400))),
    ("Cyrillic capitals", ((0x410, 0x430),)),
    ("Cyrillic small letters", ((0x430, 0x450),)),
    ("Cyrillic Serbian, Ukrainian and historic letters", ((0x400, 0x410), (0x450, 0x48A), (0xA640, 0xA6A0))),
    ("Cyrillic letters of non-Slavic languages", ((0x48A, 0x530),)),
    ("Armenian capitals", ((0x531, 0x557),)),
    ("Armenian small letters", ((0x561, 0x588),)),
    ("Hebrew", ((0x5D0, 0x5F3),)),
    ("Arabic", ((0x620, 0x64B),)),
    ("Arabic extended letters", ((0x66E, 0x700), (0x750, 0x780))),
    ("N'Ko", ((0x7CA, 0x7F6),)),
    ("Lao", ((0xE80, 0xF00),)),
    ("Georgian Asomtavruli", ((0x10A0, 0x10C6),)),
    ("Georgian Mkhedruli", ((0x10D0, 0x1100),)),
    ("Georgian Nuskhuri", ((0x2D00, 0x2D26),)),
    ("Canadian syllabics: vowels, P and T series", ((0x1400, 0x146B),)),
    ("Canadian syllabics: K, C and M series", ((0x146B, 0x14C0),)),
    ("Canadian syllabics: N, L and S series", ((0x14C0, 0x1510),)),
    ("Canadian syllabics: SH, Y, R, F and TH series", ((0x1510, 0x156B),)),
    ("Canadian syllabics: Inuktitut, Carrier and other series", ((0x156B, 0x1680),)),
    ("Ogham", ((0x1680, 0x16A0),)),
    ("Tifinagh", ((0x2D30, 0x2D80),)),
    ("Lisu", ((0xA4D0, 0xA500),)),
    ("Old Italic", ((0x10300, 0x10330),)),
)
SMALL_ALPHABETS = ("Latin capitals", "Hebrew", "Georgian Mkhedruli")  # the quick subset (``small=True``)


@dataclass(frozen=True)
class GlyphStandinConfig:
    """How the stand-in is drawn (defaults: version :data:`GLYPH_STANDIN_VERSION`'s arrays). Lengths
    in pixels of the 28 x 28 output, angles in degrees."""

    samples: int = SAMPLES_PER_CLASS
    train_fraction: float = 0.8
    render_size: int = 96            # font size (px) of the first rendering, before fitting into the box
    box: float = 20.0                # the longer side of a glyph's ink box, before the jitter
    min_size_em: float = 0.32        # drop glyphs whose ink box is smaller than this (in em) both ways
    duplicate_threshold: float = 0.93  # correlation of canonical images above which two shapes are one
    min_alphabet_size: int = 5
    stroke: tuple[float, float] = (-0.6, 1.0)  # stroke change, half-pixels per side: <0 erodes, >0 dilates
    rotation: float = 10.0           # uniform in +-rotation
    scale: tuple[float, float] = (0.85, 1.1)
    aspect: float = 0.08             # log aspect ratio uniform in +-aspect
    shear: float = 0.15
    shift: float = 1.5               # uniform in +-shift, each axis
    elastic: float = 1.0             # displacement s.d. at the control points
    elastic_grid: int = 4            # control points per side of the displacement field
    chunk: int = 1024                # samples warped at once (memory only; results do not depend on it)

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ValueError(f"GlyphStandinConfig.samples: {self.samples}, need >= 2 (one-shot problems show two)")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"GlyphStandinConfig.train_fraction: {self.train_fraction}, expected in (0, 1)")
        if self.stroke[0] < -2.0 or self.stroke[1] > 2.0 or self.stroke[0] > self.stroke[1]:
            raise ValueError(f"GlyphStandinConfig.stroke: {self.stroke}, expected lo <= hi within [-2, 2]")
        if self.elastic_grid < 2:
            raise ValueError(f"GlyphStandinConfig.elastic_grid: {self.elastic_grid}, need >= 2")

    def digest(self) -> str:
        """Short hash of the fields that change the arrays (not ``chunk``)."""
        d = dataclasses.asdict(self)
        d.pop("chunk")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True, eq=False)
class GlyphSet:
    """Character classes with ``n_samples`` images each, rotations included as classes.

    Shapes: ``images`` (n_classes, n_samples, 28, 28) float32 in [0, 1], ink = 1; ``alphabet``,
    ``rotation`` (degrees counter-clockwise) and ``character`` (index into ``characters``, the
    unrotated character) (n_classes,) long; ``train_classes`` / ``test_classes`` sorted class
    indices, disjoint, covering all classes, the four rotations of a character on one side.
    ``alphabet_names[a]`` names alphabet ``a``; ``characters[c]`` names character ``c``
    (``"U+0041 LATIN CAPITAL LETTER A"`` for the stand-in, ``"Latin/character01"`` for Omniglot).
    ``source`` says where the images come from (:data:`STANDIN_SOURCE` or :data:`OMNIGLOT_SOURCE`).
    """

    images: Tensor
    alphabet: Tensor
    rotation: Tensor
    character: Tensor
    train_classes: Tensor
    test_classes: Tensor
    alphabet_names: tuple[str, ...]
    characters: tuple[str, ...]
    name: str
    source: str
    seed: int

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.images.ndim != 4 or self.images.shape[2:] != (IMAGE_SIZE, IMAGE_SIZE) or self.images.shape[1] < 2:
            raise ValueError(f"GlyphSet.images: shape {tuple(self.images.shape)}, expected (n_classes, >=2, 28, 28)")
        if self.images.dtype != torch.float32:
            raise ValueError(f"GlyphSet.images: dtype {self.images.dtype}, expected float32")
        for field in ("alphabet", "rotation", "character"):
            if tuple(getattr(self, field).shape) != (n,):
                raise ValueError(f"GlyphSet.{field}: shape {tuple(getattr(self, field).shape)}, expected ({n},)")
        side = torch.full((n,), -1, dtype=torch.long)
        side[self.train_classes] = 0
        if bool((side[self.test_classes] == 0).any()):
            raise ValueError("GlyphSet.test_classes: overlaps train_classes")
        side[self.test_classes] = 1
        if bool((side < 0).any()) or len(self.train_classes) + len(self.test_classes) != n:
            raise ValueError(f"GlyphSet.train_classes/test_classes: must partition the {n} classes")
        per_char = torch.zeros(len(self.characters), dtype=torch.long).index_add_(0, self.character, side)
        count = torch.bincount(self.character, minlength=len(self.characters))
        if bool(((per_char != 0) & (per_char != count)).any()):
            raise ValueError("GlyphSet.train_classes: the rotations of a character lie on both sides of the split")

    @property
    def n_classes(self) -> int:
        return int(self.images.shape[0])

    @property
    def n_samples(self) -> int:
        return int(self.images.shape[1])

    def classes_of(self, split: str) -> Tensor:
        """Class indices of ``split`` ("train" or "test")."""
        table = {"train": self.train_classes, "test": self.test_classes}
        try:
            return table[split]
        except KeyError:
            raise KeyError(f"GlyphSet.classes_of: unknown split {split!r}; known: {sorted(table)}") from None


# ---------------------------------------------------------------------------------------------
# assembling a set from per-character images


def _seed_for(seed: int, tag: int) -> int:
    """An independent generator seed for one use (``tag``) of ``seed``."""
    return int(np.random.SeedSequence([int(seed), int(tag)]).generate_state(1, np.uint64)[0]) >> 1


def _split_characters(n_chars: int, seed: int, train_fraction: float) -> Tensor:
    """Bool (n_chars,): True for the ``round(train_fraction * n_chars)`` training characters."""
    g = torch.Generator().manual_seed(_seed_for(seed, 1))
    order = torch.randperm(n_chars, generator=g)
    train = torch.zeros(n_chars, dtype=torch.bool)
    train[order[: int(round(train_fraction * n_chars))]] = True
    return train


def _assemble(images: Tensor, alphabet: Tensor, train_chars: Tensor, alphabet_names: tuple[str, ...],
              characters: tuple[str, ...], *, name: str, source: str, seed: int) -> GlyphSet:
    """The :class:`GlyphSet` of ``images`` (n_chars, n_samples, 28, 28): four rotated classes per
    character (class ``4 c + k`` turned by ``90 k`` degrees), split as ``train_chars`` says."""
    n_chars = images.shape[0]
    k_rot = len(ROTATIONS)
    rotated = torch.stack([torch.rot90(images, k, dims=(-2, -1)) for k in range(k_rot)], dim=1)
    char = torch.arange(n_chars).repeat_interleave(k_rot)
    train = train_chars[char]
    cls = torch.arange(n_chars * k_rot)
    return GlyphSet(images=rotated.reshape(n_chars * k_rot, *images.shape[1:]).contiguous(),
                    alphabet=alphabet.long()[char], rotation=torch.tensor(ROTATIONS).repeat(n_chars),
                    character=char, train_classes=cls[train], test_classes=cls[~train],
                    alphabet_names=tuple(alphabet_names), characters=tuple(characters),
                    name=name, source=source, seed=int(seed))


# ---------------------------------------------------------------------------------------------
# rendering


def _font_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def _font_codepoints(path: Path) -> set[int]:
    """Code points the font maps to a real glyph (its cmap)."""
    try:
        from fontTools.ttLib import TTFont
    except ImportError:  # matplotlib's FreeType wrapper: glyph index 0 is .notdef
        from matplotlib.ft2font import FT2Font

        font = FT2Font(str(path))
        return {cp for _, ranges in STANDIN_ALPHABETS for lo, hi in ranges for cp in range(lo, hi)
                if font.get_char_index(cp) != 0}
    with TTFont(str(path), lazy=True) as font:
        return set(font.getBestCmap())


def _is_letter(cp: int) -> bool:
    ch = chr(cp)
    return unicodedata.category(ch) in ("Lu", "Ll", "Lo") and unicodedata.decomposition(ch) == ""


def _render(font, ch: str, canvas: int, box: float, min_size: float) -> np.ndarray | None:
    """``ch`` in ``font`` as a (canvas, canvas) uint8 image, ink = 255, its ink box scaled (aspect
    kept) so that the longer side is ``box`` pixels and centred; None if it has no ink or its ink box
    is below ``min_size`` pixels both ways."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = font.getbbox(ch)
    if right <= left or bottom <= top:
        return None
    img = Image.new("L", (right - left, bottom - top))
    ImageDraw.Draw(img).text((-left, -top), ch, font=font, fill=255)
    ink = img.getbbox()
    if ink is None:
        return None
    img = img.crop(ink)
    w, h = img.size
    if max(w, h) < min_size:
        return None
    scale = box / max(w, h)
    img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BOX)
    out = Image.new("L", (canvas, canvas))
    out.paste(img, ((canvas - img.size[0]) // 2, (canvas - img.size[1]) // 2))
    return np.asarray(out, dtype=np.uint8)


def _candidates(alphabets, sans: set[int]) -> list[tuple[int, int]]:
    """(alphabet index, code point) of the letters of ``alphabets`` that DejaVu Sans has."""
    return [(a, cp) for a, (_, ranges) in enumerate(alphabets) for lo, hi in ranges
            for cp in range(lo, hi) if cp in sans and _is_letter(cp)]


def _blur28(x: Tensor) -> Tensor:
    """(n, 2*28, 2*28) -> (n, 28, 28): area-downsampled, slightly blurred (s.d. 0.6 px)."""
    x = F.avg_pool2d(x[:, None], 2)
    k = torch.exp(-torch.arange(-2.0, 3.0) ** 2 / (2 * 0.6 ** 2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (2, 2, 0, 0)), k.view(1, 1, 1, 5))
    x = F.conv2d(F.pad(x, (0, 0, 2, 2)), k.view(1, 1, 5, 1))
    return x[:, 0]


def _distinct(canonical: Tensor, threshold: float) -> Tensor:
    """Bool (n,): keep glyph i unless it matches one of its own rotations by 90/180 degrees or a
    rotation (0/90/180/270) of an earlier kept glyph (correlation of the blurred 28 x 28 images
    above ``threshold``)."""
    x = _blur28(canonical)
    rot = torch.stack([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)], dim=1).flatten(2)  # (n, 4, 784)
    rot = rot - rot.mean(-1, keepdim=True)
    rot = rot / rot.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    sim = torch.einsum("id,jrd->ijr", rot[:, 0], rot).amax(-1)  # (n, n): best over the rotations of j
    self_sym = (rot[:, 0:1] * rot[:, 1:3]).sum(-1).amax(-1)
    keep = torch.zeros(len(x), dtype=torch.bool)
    for i in range(len(x)):
        keep[i] = bool(self_sym[i] < threshold) and not bool((sim[i, :i][keep[:i]] >= threshold).any())
    return keep


def _templates(alphabets, cfg: GlyphStandinConfig) -> tuple[Tensor, Tensor, list[int], list[int]]:
    """Templates (n_chars, n_faces, 56, 56) uint8 of the kept characters, ``available``
    (n_chars, n_faces) bool, their code points and alphabet indices (into ``alphabets``)."""
    from PIL import ImageFont

    root = _font_dir()
    canvas, box = 2 * IMAGE_SIZE, 2 * cfg.box
    paths = [root / f for f in STANDIN_FACES]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"glyph stand-in: matplotlib's DejaVu fonts are missing: {missing}")
    cmaps = [_font_codepoints(p) for p in paths]
    fonts = [ImageFont.truetype(str(p), cfg.render_size) for p in paths]
    min_size = cfg.min_size_em * cfg.render_size
    canonical, kept_cands = [], []
    for a, cp in _candidates(alphabets, cmaps[0]):
        img = _render(fonts[0], chr(cp), canvas, box, min_size)
        if img is not None:
            canonical.append(img)
            kept_cands.append((a, cp))
    canon = torch.from_numpy(np.stack(canonical)).float() / 255.0
    keep = _distinct(canon, cfg.duplicate_threshold).tolist()
    kept_cands = [c for c, k in zip(kept_cands, keep) if k]
    sizes = np.bincount([a for a, _ in kept_cands], minlength=len(alphabets))
    kept_cands = [(a, cp) for a, cp in kept_cands if sizes[a] >= cfg.min_alphabet_size]
    n, n_faces = len(kept_cands), len(paths)
    tmpl = np.zeros((n, n_faces, canvas, canvas), dtype=np.uint8)
    avail = np.zeros((n, n_faces), dtype=bool)
    for i, (_, cp) in enumerate(kept_cands):
        for f in range(n_faces):
            if cp in cmaps[f]:
                img = _render(fonts[f], chr(cp), canvas, box, min_size)
                if img is not None:
                    tmpl[i, f], avail[i, f] = img, True
    return torch.from_numpy(tmpl), torch.from_numpy(avail), [cp for _, cp in kept_cands], [a for a, _ in kept_cands]


# ---------------------------------------------------------------------------------------------
# handwriting-like variation


def _stroke(x: Tensor, level: Tensor) -> Tensor:
    """Grey-level erosion (``level`` < 0) or dilation (> 0), up to 2 steps of a 3 x 3 min / max
    filter (one step: half a pixel of the output on each side), blended linearly between whole
    steps. x (n, 1, H, W), level (n,) in [-2, 2]."""
    ero = -F.max_pool2d(-x, 3, stride=1, padding=1)
    dil1 = F.max_pool2d(x, 3, stride=1, padding=1)
    dil2 = F.max_pool2d(dil1, 3, stride=1, padding=1)
    steps = torch.stack([-F.max_pool2d(-ero, 3, stride=1, padding=1), ero, x, dil1, dil2], dim=0)  # levels -2..2
    pos = (level + 2.0).clamp(0.0, 4.0)
    lo = pos.floor().clamp(max=3).long()
    frac = (pos - lo).view(-1, 1, 1, 1)
    idx = torch.arange(x.shape[0])
    return steps[lo, idx] * (1 - frac) + steps[lo + 1, idx] * frac


def _jitter_params(n: int, cfg: GlyphStandinConfig, g: torch.Generator) -> dict[str, Tensor]:
    """Random affine and elastic parameters of ``n`` samples (drawn in a fixed order)."""
    def uni(lo: float, hi: float, *shape: int) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, *shape, generator=g)

    return dict(
        stroke=uni(*cfg.stroke),
        angle=uni(-cfg.rotation, cfg.rotation) * (math.pi / 180),
        scale=uni(*cfg.scale),
        aspect=torch.exp(uni(-cfg.aspect, cfg.aspect)),
        shear=uni(-cfg.shear, cfg.shear),
        shift=uni(-cfg.shift, cfg.shift, 2) * (2.0 / IMAGE_SIZE),  # normalised coordinates
        field=torch.randn(n, 2, cfg.elastic_grid, cfg.elastic_grid, generator=g) * (cfg.elastic * 2.0 / IMAGE_SIZE),
    )


def _warp(x: Tensor, p: dict[str, Tensor]) -> Tensor:
    """Sample ``x`` (n, 1, S, S) through the inverse of the forward map rotation . shear . scale,
    shifted, plus the upsampled elastic displacement; returns (n, 1, S, S)."""
    size = x.shape[-1]
    sx, sy = p["scale"] * p["aspect"].sqrt(), p["scale"] / p["aspect"].sqrt()
    cos, sin, k = torch.cos(p["angle"]), torch.sin(p["angle"]), p["shear"]
    # forward A = R(angle) @ [[1, k], [0, 1]] @ diag(sx, sy); the grid needs A^-1 (closed form, 2 x 2)
    a11, a12 = cos * sx, (cos * k - sin) * sy
    a21, a22 = sin * sx, (sin * k + cos) * sy
    det = a11 * a22 - a12 * a21
    inv = torch.stack([torch.stack([a22, -a12], -1), torch.stack([-a21, a11], -1)], -2) / det[:, None, None]
    lin = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1  # pixel centres, align_corners=False
    yy, xx = torch.meshgrid(lin, lin, indexing="ij")
    qx, qy = xx[None] - p["shift"][:, 0, None, None], yy[None] - p["shift"][:, 1, None, None]

    def row(i: int) -> Tensor:  # elementwise, so the result does not depend on threads or BLAS
        return inv[:, i, 0, None, None] * qx + inv[:, i, 1, None, None] * qy

    field = F.interpolate(p["field"], size=(size, size), mode="bicubic", align_corners=True)
    grid = torch.stack([row(0), row(1)], -1) + field.permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _samples(tmpl: Tensor, avail: Tensor, cfg: GlyphStandinConfig, seed: int) -> Tensor:
    """(n_chars, samples, 28, 28) uint8: ``cfg.samples`` variants of every character."""
    n_chars, n_faces = avail.shape
    n = n_chars * cfg.samples
    g = torch.Generator().manual_seed(_seed_for(seed, 0))
    face = torch.multinomial(avail.float().repeat_interleave(cfg.samples, dim=0), 1, replacement=True,
                             generator=g)[:, 0]
    params = _jitter_params(n, cfg, g)
    char = torch.arange(n_chars).repeat_interleave(cfg.samples)
    out = torch.empty(n, IMAGE_SIZE, IMAGE_SIZE, dtype=torch.uint8)
    for start in range(0, n, cfg.chunk):
        sl = slice(start, min(n, start + cfg.chunk))
        x = tmpl[char[sl], face[sl]].float().div_(255.0)[:, None]
        x = _stroke(x, params["stroke"][sl])
        x = _warp(x, {k: v[sl] for k, v in params.items()})
        x = F.avg_pool2d(x, 2)[:, 0]
        out[sl] = torch.round(x.clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    return out.view(n_chars, cfg.samples, IMAGE_SIZE, IMAGE_SIZE)


# ---------------------------------------------------------------------------------------------
# the stand-in: build, cache, load


def _alphabets(small: bool):
    return tuple(a for a in STANDIN_ALPHABETS if a[0] in SMALL_ALPHABETS) if small else STANDIN_ALPHABETS


def _generate(seed: int, small: bool, cfg: GlyphStandinConfig) -> dict[str, np.ndarray]:
    """The arrays of the stand-in (what the cache stores)."""
    alphabets = _alphabets(small)
    tmpl, avail, cps, alph = _templates(alphabets, cfg)
    images = _samples(tmpl, avail, cfg, seed)
    used = sorted(set(alph))
    remap = {a: i for i, a in enumerate(used)}
    return dict(
        images=images.numpy(),
        alphabet=np.array([remap[a] for a in alph], dtype=np.int64),
        alphabet_names=np.array([alphabets[a][0] for a in used]),
        characters=np.array([f"U+{cp:04X} {unicodedata.name(chr(cp))}" for cp in cps]),
        train=_split_characters(len(cps), seed, cfg.train_fraction).numpy(),
    )


def _from_arrays(arrays: dict[str, np.ndarray], seed: int, small: bool) -> GlyphSet:
    images = torch.from_numpy(np.ascontiguousarray(arrays["images"])).float().div_(255.0)
    alphabet, train = torch.from_numpy(np.array(arrays["alphabet"])), torch.from_numpy(np.array(arrays["train"]))
    return _assemble(images, alphabet, train,
                     tuple(str(s) for s in arrays["alphabet_names"]), tuple(str(s) for s in arrays["characters"]),
                     name="glyph_standin_small" if small else "glyph_standin", source=STANDIN_SOURCE, seed=seed)


def build_glyph_standin(seed: int = 0, *, small: bool = False, config: GlyphStandinConfig | None = None) -> GlyphSet:
    """Generate the Omniglot **stand-in** (see the module docstring) without touching any cache.
    ``small=True`` keeps only :data:`SMALL_ALPHABETS` (for tests; its duplicate removal runs on those
    alone)."""
    cfg = config if config is not None else GlyphStandinConfig()
    return _from_arrays(_generate(seed, small, cfg), seed, small)


def _fonts_digest() -> str:
    h = hashlib.sha256()
    for f in STANDIN_FACES:
        h.update(f.encode())
        h.update(hashlib.sha256((_font_dir() / f).read_bytes()).digest())
    return h.hexdigest()[:16]


def glyph_cache_path(seed: int = 0, cache_dir: str | os.PathLike | None = None, *, small: bool = False,
                     config: GlyphStandinConfig | None = None) -> Path:
    """Where :func:`load_glyph_standin` keeps its arrays: ``cache_dir``, else ``$PLASTIX_CACHE``, else
    ``~/.cache/plastix``; file ``glyph_standin_v<version>_<seed>[_small][_<config digest>].npz`` (the
    digest only for a non-default config)."""
    cfg = config if config is not None else GlyphStandinConfig()
    folder = Path(cache_dir) if cache_dir is not None else \
        Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "plastix")
    tail = ("_small" if small else "") + ("" if cfg == GlyphStandinConfig() else f"_{cfg.digest()}")
    return folder.expanduser() / f"glyph_standin_v{GLYPH_STANDIN_VERSION}_{int(seed)}{tail}.npz"


def _meta(seed: int, small: bool, cfg: GlyphStandinConfig) -> str:
    return json.dumps(dict(version=GLYPH_STANDIN_VERSION, seed=int(seed), small=bool(small), config=cfg.digest(),
                           fonts=_fonts_digest()), sort_keys=True)


def _read_cache(path: Path, meta: str) -> dict[str, np.ndarray] | None:
    """The cached arrays if ``path`` holds a readable file written for ``meta``, else None."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["meta"]) != meta:
                return None
            return {k: z[k] for k in z.files if k != "meta"}
    except (OSError, KeyError, ValueError):
        return None


def load_glyph_standin(seed: int = 0, cache_dir: str | os.PathLike | None = None, small: bool = False, *,
                       config: GlyphStandinConfig | None = None) -> GlyphSet:
    """The Omniglot **stand-in** of ``seed``, read from the cache (:func:`glyph_cache_path`) or
    generated and cached (one compressed ``.npz``, replaced atomically). A cache file written by
    another version, seed, config or font files is regenerated."""
    cfg = config if config is not None else GlyphStandinConfig()
    path = glyph_cache_path(seed, cache_dir, small=small, config=cfg)
    meta = _meta(seed, small, cfg)
    arrays = _read_cache(path, meta)
    if arrays is None:
        arrays = _generate(seed, small, cfg)
        with new_file(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(meta), **arrays)
    return _from_arrays(arrays, seed, small)


# ---------------------------------------------------------------------------------------------
# the real Omniglot folder


OMNIGLOT_PARTS = ("images_background", "images_evaluation")


def _read_omniglot_image(path: Path) -> Tensor:
    """A (28, 28) float32 image, ink = 1 (Omniglot draws black on white), area-resized."""
    from PIL import Image

    with Image.open(path) as img:
        x = torch.from_numpy(np.asarray(img.convert("L"), dtype=np.float32) / 255.0)
    return F.adaptive_avg_pool2d((1.0 - x)[None, None], IMAGE_SIZE)[0, 0]


def load_omniglot_folder(root: str | os.PathLike, *, seed: int = 0, samples: int = SAMPLES_PER_CLASS,
                         train_fraction: float = 0.8, by_folder: bool = False) -> GlyphSet:
    """Omniglot from ``root/images_background/<alphabet>/<character>/*.png`` and
    ``root/images_evaluation/...`` (either may be missing) as a :class:`GlyphSet`: the first
    ``samples`` images (sorted by name) of every character resized to 28 x 28 (ink = 1), four
    rotated classes per character, characters split ``train_fraction`` / rest from ``seed`` as in
    the paper, or, with ``by_folder``, background = training and evaluation = testing (Omniglot's
    own split, by alphabet)."""
    root = Path(root)
    parts = [p for p in OMNIGLOT_PARTS if (root / p).is_dir()]
    if not parts:
        raise FileNotFoundError(f"load_omniglot_folder: {root} has none of {OMNIGLOT_PARTS}")
    images, alphabet, names, chars, in_background = [], [], [], [], []
    for part in parts:
        for alph_dir in sorted(d for d in (root / part).iterdir() if d.is_dir()):
            name = alph_dir.name if alph_dir.name not in names else f"{part}/{alph_dir.name}"
            names.append(name)
            for char_dir in sorted(d for d in alph_dir.iterdir() if d.is_dir()):
                files = sorted(char_dir.glob("*.png"))
                if len(files) < samples:
                    raise ValueError(f"load_omniglot_folder: {char_dir} has {len(files)} images, need {samples}")
                images.append(torch.stack([_read_omniglot_image(f) for f in files[:samples]]))
                alphabet.append(len(names) - 1)
                chars.append(f"{name}/{char_dir.name}")
                in_background.append(part == OMNIGLOT_PARTS[0])
    if not images:
        raise FileNotFoundError(f"load_omniglot_folder: no character folders under {root}")
    train = torch.tensor(in_background) if by_folder else _split_characters(len(images), seed, train_fraction)
    return _assemble(torch.stack(images).clamp_(0.0, 1.0), torch.tensor(alphabet), train, tuple(names), tuple(chars),
                     name="omniglot", source=OMNIGLOT_SOURCE, seed=seed)


# ---------------------------------------------------------------------------------------------
# digits for zero-shot transfer


def load_digit_glyphs(*, samples: int | None = None, box: int = 20) -> GlyphSet:
    """scikit-learn's 1,797 handwritten 8 x 8 digits as a :class:`GlyphSet` for the zero-shot transfer
    of Meta-SpikePropamine's Results (a model trained on characters tested on digits without further
    training; the paper uses MNIST, which cannot be downloaded here). Every image is scaled to [0, 1]
    (ink = 1), bilinearly upsampled to ``box`` x ``box`` pixels (the stand-in's glyph box) and centred
    in 28 x 28. 10 classes (no rotations), the first ``samples`` images of each (default: 174, what the
    smallest class has); all of them test classes (``train_classes`` is empty)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    n = int(torch.bincount(y, minlength=10).min()) if samples is None else int(samples)
    if not 2 <= n <= int(torch.bincount(y, minlength=10).min()) or not 8 <= box <= IMAGE_SIZE:
        raise ValueError(f"load_digit_glyphs: samples {samples} (2..174) or box {box} (8..{IMAGE_SIZE}) out of range")
    per_class = torch.stack([x[y == c][:n] for c in range(10)])  # (10, n, 8, 8)
    up = F.interpolate(per_class.reshape(-1, 1, 8, 8), size=(box, box), mode="bilinear", align_corners=False)
    lo = (IMAGE_SIZE - box) // 2
    images = torch.zeros(10 * n, IMAGE_SIZE, IMAGE_SIZE)
    images[:, lo:lo + box, lo:lo + box] = up[:, 0].clamp(0.0, 1.0)
    cls = torch.arange(10)
    return GlyphSet(images=images.view(10, n, IMAGE_SIZE, IMAGE_SIZE).contiguous(), alphabet=torch.zeros(10, dtype=torch.long),
                    rotation=torch.zeros(10, dtype=torch.long), character=cls, train_classes=cls[:0],
                    test_classes=cls, alphabet_names=("digits",), characters=tuple(str(c) for c in range(10)),
                    name="sklearn_digits", source=DIGITS_SOURCE, seed=0)
