"""The one-shot cue task generator: timing, permutation, firing rates, labels, learning signal."""
import torch

from plastix.tasks.cue_association import LEFT, RIGHT, OneShotCueConfig, one_shot_cue_problems


def _gen(batch=64, seed=0, **kw):
    return one_shot_cue_problems(batch, OneShotCueConfig(**kw), generator=torch.Generator().manual_seed(seed))


def test_paper_timing():
    cfg = OneShotCueConfig()
    assert cfg.trial_steps == 350 and cfg.total_steps == 1050 and cfg.n_inputs == 20
    p = _gen(8)
    assert p.cues.shape == (1050, 8, 20) and p.signal.shape == (1050, 8, 2)
    assert p.decision.sum() == 25 and p.decision[-25:].all()


def test_permutation_maps_groups():
    p = _gen(16, permute=True)
    inv = p.permutation.argsort(dim=1)
    unpermuted = torch.gather(p.rates, 2, inv[None].expand(p.rates.shape[0], -1, -1))
    # decision group (channels 10..14) is active exactly in decision windows
    t_dec = torch.tensor([330, 680, 1040])
    assert torch.allclose(unpermuted[t_dec][:, :, 10:15], torch.tensor(0.75))
    assert torch.allclose(unpermuted[:, :, 15:], torch.tensor(0.15))  # noise group never active
    assert not torch.equal(p.permutation, p.permutation[:1].expand_as(p.permutation))  # differs per problem


def test_cue_rates_and_majority_labels():
    p = _gen(256, permute=False)
    for b in range(8):
        for trial in range(3):
            base = trial * 350
            active = [p.rates[base + c * 55 + 5, b, :10] for c in range(5)]
            sides = [RIGHT if a[:5].max() == 0.75 else LEFT for a in active]
            assert all(a.max() == 0.75 and a.min() == 0.15 for a in active)
            assert (sum(s == LEFT for s in sides) > 2) == (p.labels[b, trial].item() == LEFT)
    emp = p.cues.mean()
    assert abs(emp.item() - p.rates.mean().item()) < 0.01


def test_training_trials_have_one_of_each_class_and_signal():
    p = _gen(128)
    assert torch.all(p.labels[:, :2].sum(1) == 1)
    on = p.signal.sum(-1) > 0
    assert on.sum(0).eq(50).all()  # 25 steps in each of the two training decision windows
    assert not on[700:].any()      # no learning signal in the test trial
    t = 325  # inside the first training decision window
    assert torch.equal(p.signal[t].argmax(-1), p.labels[:, 0])


def test_seeded_and_other_cue_counts():
    a, b = _gen(4, seed=3), _gen(4, seed=3)
    assert torch.equal(a.cues, b.cues)
    for m in (1, 3, 7, 15):
        p = _gen(4, n_cues=m)
        assert p.cues.shape[0] == 3 * (m * 55 + 75)


def test_test_trial_mask_and_shortened_timing():
    p = _gen(4, n_cues=3, cue_steps=10, rest_steps=10, delay_steps=20, decision_steps=10)
    trial = 3 * 20 + 20 + 10
    assert p.cues.shape[0] == 3 * trial
    assert p.test.sum() == trial and p.test[-trial:].all() and not p.test[:-trial].any()
    assert (p.decision & ~p.test).sum() == 0 and p.decision.sum() == 10
