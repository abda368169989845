"""The Omniglot stand-in (generated glyphs), the Omniglot folder loader and the one-shot character
task protocol of Meta-SpikePropamine ("Recognizing novel character classes from a single example")."""
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from plastix.tasks import glyphs
from plastix.tasks.glyphs import (
    OMNIGLOT_SOURCE, STANDIN_SOURCE, GlyphStandinConfig, build_glyph_standin, glyph_cache_path,
    load_glyph_standin, load_omniglot_folder,
)
from plastix.tasks.one_shot_glyphs import OneShotGlyphConfig, one_shot_glyph_problems, score_one_shot_glyphs


@pytest.fixture(scope="module")
def small():
    return build_glyph_standin(0, small=True)


def _problems(glyph_set, batch=256, seed=0, **kw):
    return one_shot_glyph_problems(batch, glyph_set, OneShotGlyphConfig(**kw),
                                   generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# the stand-in


def test_standin_is_named_a_standin_and_shaped(small):
    assert small.source == STANDIN_SOURCE and "not Omniglot" in small.source
    assert "standin" in small.name and "not Omniglot" in glyphs.__doc__
    n = small.n_classes
    assert small.images.shape == (n, 20, 28, 28) and small.images.dtype == torch.float32
    assert n == 4 * len(small.characters) and len(small.alphabet_names) >= 3
    assert small.alphabet.shape == small.rotation.shape == small.character.shape == (n,)
    assert all(c.startswith("U+") for c in small.characters)


def test_generation_is_deterministic_per_seed(small):
    again = build_glyph_standin(0, small=True)
    assert torch.equal(small.images, again.images)
    assert torch.equal(small.train_classes, again.train_classes) and small.characters == again.characters
    other = build_glyph_standin(1, small=True)
    assert other.characters == small.characters  # the same glyphs ...
    assert not torch.equal(other.images, small.images)  # ... drawn differently
    assert not torch.equal(other.train_classes, small.train_classes)


def test_split_is_disjoint_80_20_and_keeps_rotations_together(small):
    train, test = small.train_classes, small.test_classes
    assert not set(train.tolist()) & set(test.tolist())
    assert len(train) + len(test) == small.n_classes
    assert len(train) == 4 * round(0.8 * len(small.characters))
    assert not set(small.character[train].tolist()) & set(small.character[test].tolist())
    assert torch.equal(small.classes_of("test"), test)
    with pytest.raises(KeyError, match="known"):
        small.classes_of("valid")


def test_rotations_are_new_classes_of_the_same_images(small):
    assert small.rotation[:8].tolist() == [0, 90, 180, 270] * 2
    base = small.images[0::4]
    for k in (1, 2, 3):
        assert torch.equal(small.images[k::4], torch.rot90(base, k, dims=(-2, -1)))
        assert torch.equal(small.character[k::4], small.character[0::4])


def test_images_in_unit_range_with_ink_and_centred(small):
    x = small.images
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert torch.equal(x, torch.round(x * 255) / 255)  # quantised like the cache
    peak = x.flatten(2).amax(-1)
    assert bool((peak > 0.5).all())  # every image has ink
    ink = x.flatten(2).mean(-1)
    assert 0.03 < float(ink.mean()) < 0.35
    grid = torch.arange(28.0)
    mass = x.sum((-2, -1))
    cy = (x.sum(-1) * grid).sum(-1) / mass
    cx = (x.sum(-2) * grid).sum(-1) / mass
    assert float((cy - 13.5).abs().mean()) < 2.0 and float((cx - 13.5).abs().mean()) < 2.0


def test_samples_vary_but_classes_are_recognisable(small):
    x = small.images.flatten(2)  # (C, 20, 784)
    within = (x[:, :10] - x[:, 10:]).abs().mean(-1)
    assert bool((within > 0.02).all())  # no two compared samples of a class are near the same image
    means = x[:, :10].mean(1)  # class means from samples 0..9
    queries = x[:, 10:].reshape(-1, x.shape[-1])  # classify samples 10..19 by the nearest mean
    nearest = torch.cdist(queries, means).argmin(1)
    truth = torch.arange(x.shape[0]).repeat_interleave(10)
    assert float((nearest == truth).float().mean()) > 0.15  # chance is 1 / C (0.003); seeds 0-2 give 0.25-0.29
    d_own = (queries - means[truth]).norm(dim=1).mean()
    d_all = torch.cdist(queries, means).mean()
    assert float(d_own) < 0.85 * float(d_all)  # about 0.77 for seeds 0-2


def test_no_two_characters_share_a_shape(small):
    """Canonical duplicates (also up to rotation) were removed: the class means of different
    characters, in any rotation, stay apart."""
    m = small.images[0::4].mean(1).flatten(1)
    rot = torch.stack([torch.rot90(small.images[0::4].mean(1), k, dims=(-2, -1)).flatten(1) for k in range(4)], 1)
    d = torch.cdist(m, rot.flatten(0, 1)).view(len(m), len(m), 4).amin(-1)
    d.fill_diagonal_(float("inf"))
    assert float(d.min()) > 1.0


def test_cache_roundtrip_env_var_and_config_digest(tmp_path, monkeypatch, small):
    path = glyph_cache_path(0, tmp_path, small=True)
    assert path.name == f"glyph_standin_v{glyphs.GLYPH_STANDIN_VERSION}_0_small.npz"
    monkeypatch.setenv("PLASTIX_CACHE", str(tmp_path / "env"))
    assert glyph_cache_path(3).parent == tmp_path / "env"
    assert glyph_cache_path(3, tmp_path).parent == tmp_path  # the argument wins
    assert glyph_cache_path(3, config=GlyphStandinConfig(rotation=5.0)).name.startswith("glyph_standin_v1_3_")
    first = load_glyph_standin(0, tmp_path, small=True)
    assert path.exists() and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert torch.equal(first.images, small.images) and torch.equal(first.train_classes, small.train_classes)

    def no_generation(*a, **k):
        raise AssertionError("regenerated although the cache is valid")

    monkeypatch.setattr(glyphs, "_generate", no_generation)
    again = load_glyph_standin(0, tmp_path, small=True)
    assert torch.equal(again.images, small.images) and again.characters == small.characters


# ---------------------------------------------------------------------------------------------
# the Omniglot folder


def _fake_omniglot(root, layout):
    """PNG files like Omniglot's: 105 x 105, black ink (a bar at a character-specific place) on white."""
    for part, alphabets in layout.items():
        for alphabet, n_chars in alphabets.items():
            for c in range(n_chars):
                folder = root / part / alphabet / f"character{c + 1:02d}"
                folder.mkdir(parents=True)
                for s in range(20):
                    img = Image.new("L", (105, 105), 255)
                    top = 10 + 20 * c + (s % 3)
                    ImageDraw.Draw(img).rectangle([20, top, 84, top + 11], fill=0)
                    img.convert("1").save(folder / f"{c:04d}_{s + 1:02d}.png")


def test_omniglot_folder_loader_on_a_fake_tree(tmp_path):
    _fake_omniglot(tmp_path, {"images_background": {"Alpha": 3, "Beta": 2}, "images_evaluation": {"Gamma": 2}})
    s = load_omniglot_folder(tmp_path, seed=0)
    assert s.source == OMNIGLOT_SOURCE and s.name == "omniglot"
    assert s.images.shape == (4 * 7, 20, 28, 28) and s.images.dtype == torch.float32
    assert s.alphabet_names == ("Alpha", "Beta", "Gamma") and s.characters[0] == "Alpha/character01"
    assert float(s.images.min()) >= 0.0 and float(s.images.max()) <= 1.0
    first = s.images[0, 0]
    assert float(first[0, 0]) == 0.0 and float(first[4, 14]) > 0.9  # white paper = 0, the black bar = 1
    assert torch.equal(s.images[2], torch.rot90(s.images[0], 2, dims=(-2, -1)))
    assert len(s.train_classes) == 4 * round(0.8 * 7)
    by_folder = load_omniglot_folder(tmp_path, by_folder=True)
    assert sorted(set(by_folder.alphabet[by_folder.test_classes].tolist())) == [2]
    with pytest.raises(ValueError, match="need 25"):
        load_omniglot_folder(tmp_path, samples=25)
    with pytest.raises(FileNotFoundError):
        load_omniglot_folder(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------
# the task protocol


def test_protocol_timing():
    cfg = OneShotGlyphConfig()
    assert cfg.total_steps == 120 and cfg.n_slots == 6


def test_problems_follow_the_paper_protocol(small):
    p = _problems(small, 512)
    assert p.images.shape == (512, 6, 28, 28)
    assert p.slot_of_step.tolist() == [s for s in range(6) for _ in range(20)]
    assert p.modulation_on[:20].all() and not p.modulation_on[20:].any()
    phase2 = p.classes[:, 1:]
    same = phase2 == p.classes[:, :1]
    assert same.sum(1).eq(1).all()  # exactly one correct phase-2 slot ...
    assert torch.equal(same.long().argmax(1), p.target)  # ... and it is the target
    assert bool((phase2.sort(1).values.diff(dim=1) != 0).all())  # all phase-2 classes distinct
    b = torch.arange(512)
    assert bool((p.samples[b, 1 + p.target] != p.samples[:, 0]).all())  # a different sample of the class
    assert torch.equal(p.images, small.images[p.classes, p.samples])
    assert bool(torch.isin(p.classes, small.train_classes).all())
    assert set(p.target.tolist()) == set(range(5))


def test_test_split_and_other_sizes(small):
    p = _problems(small, 64, split="test", n_way=3, present_steps=7)
    assert bool(torch.isin(p.classes, small.test_classes).all())
    assert p.images.shape == (64, 4, 28, 28) and p.slot_of_step.shape == (28,) and int(p.modulation_on.sum()) == 7
    with pytest.raises(ValueError, match="known"):
        OneShotGlyphConfig(split="valid")


def test_problems_are_seeded(small):
    a, b, c = _problems(small, 32, seed=5), _problems(small, 32, seed=5), _problems(small, 32, seed=6)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.classes, c.classes)


def test_scorer_picks_the_slot_with_most_activity(small):
    p = _problems(small, 128)
    g = torch.Generator().manual_seed(1)
    activity = 0.3 * torch.rand(120, 128, generator=g)
    activity[:20] += 5.0  # phase 1 does not count
    hit = p.slot_of_step[:, None] == (1 + p.target)[None, :]
    score = score_one_shot_glyphs(activity + hit.float(), p)
    assert torch.equal(score.prediction, p.target) and float(score.accuracy) == 1.0
    wrong = score_one_shot_glyphs((activity + hit.float())[..., None] * -1.0, p)
    assert float(wrong.accuracy) < 0.5
    flat = score_one_shot_glyphs(torch.zeros(120, 128), p)  # ties: the first phase-2 slot
    assert bool((flat.prediction == 0).all())
    assert float(flat.accuracy) == pytest.approx(float((p.target == 0).float().mean()))
    with pytest.raises(ValueError, match="expected"):
        score_one_shot_glyphs(torch.zeros(100, 128), p)


def test_cache_file_is_a_plain_npz(tmp_path):
    load_glyph_standin(2, tmp_path, small=True)
    with np.load(glyph_cache_path(2, tmp_path, small=True), allow_pickle=False) as z:
        assert z["images"].dtype == np.uint8 and z["images"].shape[1:] == (20, 28, 28)
        assert "meta" in z.files and z["train"].dtype == bool
