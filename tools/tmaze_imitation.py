"""Can a recurrent policy learn the T-maze assignment within an episode? Imitation of the scripted learner.

DAgger (Ross et al. 2011) on the paper's task (inputs and motors shuffled per episode, every assignment equally often):
at each decision the env follows the teacher (``plastix.tasks.tmaze_scripted.HypothesisAgent``) with probability beta
(1 -> 0 over ``--beta-iters``), else the student; every decision is labelled with the teacher's motor for the history
so far (the teacher also watches the student's steps), and the student minimises the cross-entropy of its motors
against that label, by BPTT through the whole training episode. The student's weights are then fixed: whatever it
does differently in different episodes it must find out within the episode.

Students (``--policy``):
  ``plain_gru``  a torch GRUCell (``--hidden`` units) -> linear -> 3 motor logits, one step per env step, input: the 5
                 observations + the motor it pressed (its command held for the env's 4 network steps); a reference
                 for what an ordinary recurrent policy learns from this teacher.
  ``enu``, ``gru``, ``lstm``, ``nfenu``  the ES networks of ``plastix.trainer.experiments.enu_net`` (6 neurons of one
                 shared cell, 48 synapses of another), stepped exactly as in an ES rollout (4 network steps per env
                 step, the env acts on the arg-max of the summed motor activity if it is > 0); logits = ``--scale`` x
                 that sum, and a hinge pushes the labelled motor's sum above 0.5 (the env does nothing otherwise).
                 ``--readout linear|circulant``: a learned map from all six neurons instead (not the paper's I/O; a
                 probe of what blocks the imitation); ``--readout motor_channels``: the motors' own 16 channels,
                 ``--anneal A:B`` blends it into the paper's readout; ``--surrogate S``: the motors' channel-0 clamp
                 passes gradient S in the logits (the paper's readout otherwise passes none where a motor is silent);
                 ``--teacher-frame``: a rotation-equivariant teacher.

Evaluation: every ``--eval-every`` iterations, the student alone on 72 stratified 400-step episodes of the paper's
task (seed 1, the episodes of ``tools/tmaze_learner_score.py``, which scores the teacher).

    python tools/tmaze_imitation.py --policy plain_gru [--hidden 128] [--iters 600] [--envs 72] [--steps 60] [--seed 0]
                                    [--no-efference] [--gru-steps 4]
    python tools/tmaze_imitation.py --policy enu --envs 36 --iters 300 [--lr 1e-3] [--init ES.plx] [--init-gain G]
                                    [--out model.plx] [--readout motor0|linear|circulant|motor_channels]
                                    [--teacher-frame] [--surrogate 1] [--lr-min-frac 0.1] [--keep-best]
    curriculum: ... --task-config fixed_io --save-state a.pt; ... --task-config shuffle_outputs --load-state a.pt
                [--eval-config reduced]
"""
from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from typing import Callable

import torch

from plastix.tasks.registry import task_config
from plastix.tasks.tmaze import TMaze
from plastix.tasks.tmaze_scripted import HypothesisAgent

Tensor = torch.Tensor
EVAL_EPISODES, EVAL_SEED = 72, 1
_ROLL = torch.tensor([[(j + d) % 3 for d in range(3)] for j in range(3)])   # [j, d] -> neuron j + d


class PlainGRU(torch.nn.Module):
    """One decision per env step from (observation, last motor pressed). ``efference=False``: the last motor is not an
    input (zeros); ``steps``: GRU steps per decision on the same input, logits = the sum of their readouts (4 = the
    ES networks' timing)."""

    def __init__(self, hidden: int, seed: int, *, efference: bool = True, steps: int = 1) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.hidden, self.efference, self.steps = hidden, efference, steps
        self.cell = torch.nn.GRUCell(5 + 3, hidden)
        self.readout = torch.nn.Linear(hidden, 3)

    def start(self, envs: int, seed: int) -> tuple[Tensor, Tensor]:
        return torch.zeros(envs, self.hidden), torch.zeros(envs, 3)

    def decide(self, task: TMaze, obs: Tensor, state, follow: Tensor, label: Tensor, teacher: HypothesisAgent):
        """One decision -> (logits (E, 3), obs after it, reward (E,), ended (E,), state, label (E,): the teacher's)."""
        h, last = state
        x = torch.cat([obs[0, :, :5].float(), last if self.efference else torch.zeros_like(last)], -1)
        logits = 0.0
        for _ in range(self.steps):
            h = self.cell(x, h)
            logits = logits + self.readout(h)
        pressed = torch.where(follow, label, logits.detach().argmax(-1))
        onehot = torch.nn.functional.one_hot(pressed, 3).float()
        for _ in range(task.substeps):   # the command held for the env's network steps
            obs, rew, term, trunc, _ = task.step(onehot[None])
            teacher.observe(obs, pressed[None])
        return logits, obs, rew[0], (term | trunc)[0], (h, onehot), label


class Network(torch.nn.Module):
    """An ES network (``enu_net.NetworkSpec``) as a student: its genome is the trained parameter.

    ``readout``: ``motor0`` (the paper's: channel 0 of the three motor neurons, summed over the decision's network
    steps, is what the env acts on), or a learned map from all six neurons' outputs to 3 logits whose arg-max is
    pressed -- ``linear`` (any map; it can tell absolute motor indices apart) or ``circulant`` (logit ``j`` weighs
    neuron ``j + d`` with weights that depend on ``d`` only: it rotates with the network, so it cannot), or
    ``motor_channels`` (logit ``j`` weighs motor ``j``'s own 16 output channels, the same weights for every motor:
    the paper's readout is the weights ``scale x e_0``). ``mix`` (0..1, ``motor_channels`` only) blends that learned
    readout into the paper's: logits = (1 - mix) w . o_j + mix x scale x o_j[0]; at ``mix = 1`` the student is the
    paper's network again (the env acts on channel 0, a .plx holds it): a continuation from a readout with a gradient
    to the one without. ``surrogate``: in the logits only, the motors' channel 0 passes gradient ``surrogate`` (not 0)
    where its clamp to [0, 1] is active (a surrogate gradient, so a silent motor can be pushed up; the forward pass and
    the network's own dynamics are exact).
    ``teacher_frame``: label with a rotation-equivariant teacher (``HypothesisAgent.set_frame`` at the student's first
    press; the decisions before it are labelled with the student's own press)."""

    READOUTS = ("motor0", "linear", "circulant", "motor_channels")

    def __init__(self, kind: str, scale: float, seed: int, init_noise: float | None = None, *,
                 readout: str = "motor0", teacher_frame: bool = False, surrogate: float = 0.0) -> None:
        super().__init__()
        from plastix.trainer.experiments.es_run import model_for_task
        if readout not in self.READOUTS:
            raise ValueError(f"readout must be one of {self.READOUTS}, got {readout!r}")
        self.spec = model_for_task("tmaze", kind)
        if init_noise is not None:   # std of the initial outputs o_0, the only thing that tells the motors apart
            self.spec = replace(self.spec, init_noise=init_noise)
        self.scale, self.readout, self.teacher_frame, self.mix = scale, readout, teacher_frame, 0.0
        if surrogate and (self.spec.cell.cell_kind != "enu_cell" or readout not in ("motor0", "motor_channels")):
            raise ValueError("surrogate: only for ENU cells read through the motors' channel 0")
        self.surrogate = surrogate
        self.genome = torch.nn.Parameter(self.spec.init_genome(torch.Generator().manual_seed(seed)))
        C = self.spec.channels
        g = torch.Generator().manual_seed(seed + 1)
        if readout == "linear":
            self.w_read = torch.nn.Parameter(torch.randn(3, 6, C, generator=g) / (6 * C) ** 0.5)
        elif readout == "circulant":   # [hidden / motor, offset d, channel]
            self.w_read = torch.nn.Parameter(torch.randn(2, 3, C, generator=g) / (6 * C) ** 0.5)
        elif readout == "motor_channels":
            self.w_read = torch.nn.Parameter(torch.randn(C, generator=g) / C ** 0.5)

    @property
    def paper_io(self) -> bool:
        """The env acts on the motors' channel 0 (pressing only when the arg-max sum is > 0), as in the paper."""
        return self.readout == "motor0" or (self.readout == "motor_channels" and self.mix >= 1.0)

    @property
    def logit_scale(self) -> float:
        """logits = logit_scale x the decision's summed readout (``--scale`` for the motor activity, else 1)."""
        return self.scale if self.readout == "motor0" else 1.0   # (motor_channels: the mix carries the scale)

    def start(self, envs: int, seed: int):
        self.model = self.spec.population_model(self.genome[None], fused=False)
        self.frame = torch.full((envs,), -1, dtype=torch.long)
        return self.model.init_state(envs, torch.Generator().manual_seed(seed ^ 0x5EED))   # as es_eval.rollout

    def motor0(self, out: Tensor, state) -> Tensor:
        """The motors' channel 0 (E, 3); with a ``surrogate`` its gradient outside [0, 1] is that, not 0."""
        if not self.surrogate:
            return out
        h = state[1].h[0].reshape(out.shape[0], -1, state[1].h.shape[-1])[:, 3:]      # motors' memory (E, 3, M)
        v = h @ self.model.neu.w_o[0, 0, 0]                                           # pre-clamp channel 0
        outside = ((v < 0) | (v > 1)).to(v.dtype)
        return out + self.surrogate * outside * (v - v.detach())

    def logits_of(self, out: Tensor, neurons: Tensor) -> Tensor:
        """One network step's contribution to the decision's logits: ``out`` (E, 3) the motors' channel 0,
        ``neurons`` (E, 6, C) all outputs (hidden 0-2, motors 3-5)."""
        if self.readout == "motor0":
            return out
        if self.readout == "linear":
            return torch.einsum("enc,anc->ea", neurons, self.w_read)
        if self.readout == "motor_channels":
            own = neurons[:, 3:] @ self.w_read if self.mix < 1.0 else 0.0
            return (1.0 - self.mix) * own + self.mix * self.scale * out
        # circulant: logit j = sum_d w[0, d] . hidden_{j+d} + w[1, d] . motor_{j+d}
        return (torch.einsum("ejdc,dc->ej", neurons[:, :3][:, _ROLL], self.w_read[0])
                + torch.einsum("ejdc,dc->ej", neurons[:, 3:][:, _ROLL], self.w_read[1]))

    def decide(self, task: TMaze, obs: Tensor, state, follow: Tensor, label: Tensor, teacher: HypothesisAgent):
        total, pressed, E = 0.0, None, obs.shape[1]
        for k in range(task.substeps):
            out, state = self.model.act(obs, state)
            total = total + self.logits_of(self.motor0(out[0], state), state[2][0])
            # the env sums the group's activity: the network's own (motor0), else the pressed motor at the last step
            act = out[0] if self.paper_io else torch.zeros(E, 3)
            if k == task.substeps - 1:
                best, motor = total.detach().max(-1)
                own = torch.where(best > 0, motor, torch.full_like(motor, -1)) if self.paper_io else motor
                unset = self.frame < 0
                if self.teacher_frame:   # before its first press the student's own press is the label
                    label = torch.where(unset & (own >= 0), own, label)
                p = torch.where(follow, label, own)
                if self.teacher_frame:
                    newly = unset & (p >= 0)
                    self.frame = torch.where(newly, p, self.frame)
                    teacher.set_frame(newly[None], self.frame[None])
                if self.paper_io:   # the teacher's command outweighs the network's activity
                    act = torch.where(follow[:, None], 10.0 * torch.nn.functional.one_hot(label, 3), act)
                else:
                    act = torch.nn.functional.one_hot(p.clamp(min=0), 3).float()
                pressed = p[None]
            obs, rew, term, trunc, _ = task.step(act.detach()[None])
            teacher.observe(obs, pressed)         # (the teacher only reads ``pressed`` at the group's last step)
        return self.logit_scale * total, obs, rew[0], (term | trunc)[0], state, label

    def extra_loss(self, logits: Tensor, label: Tensor) -> Tensor:
        """The env does nothing unless the arg-max motor's summed activity is > 0 (the paper's readout only)."""
        if not self.paper_io:
            return torch.zeros(logits.shape[0])
        return torch.relu(0.5 - logits.gather(-1, label[:, None])[:, 0] / self.scale)


LABELS = ("teacher", "sure")


def episode(student, *, envs: int, steps: int, seed: int, beta: float, train: bool, preset: str = "reduced",
            on_decision: Callable[[Tensor], None] | None = None, labels: str = "teacher") -> dict:
    """A batch of T-maze episodes; the teacher labels every decision, the env follows it with
    probability ``beta``; ``preset``: a T-maze preset of the task registry (``reduced``: the paper's task);
    ``on_decision(logits)`` runs after every decision. ``labels="sure"``: the teacher's motor and every motor that is
    right under every hypothesis it still holds (:meth:`HypothesisAgent.sure_motors`) are right (the loss is ``-log``
    of their summed probability), not just the one its tie-break picks.
    Returns the mean cross-entropy (a graph when ``train``), the agreement and the mean return."""
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}, got {labels!r}")
    base = task_config("tmaze", preset)
    cfg = replace(base, num_envs=envs, stratify=bool(base.shuffle) and envs % base.num_assignments == 0, steps=steps)
    task = TMaze(cfg, population=1)
    obs, _ = task.reset(seed=seed)
    teacher = HypothesisAgent(task)
    teacher.reset(obs)
    state = student.start(envs, seed)
    coin = torch.Generator().manual_seed(seed)
    alive = torch.ones(envs, dtype=torch.bool)
    loss, decisions, agree = torch.zeros(()), 0, 0
    ret = torch.zeros(envs)
    with torch.set_grad_enabled(train):
        for _ in range(steps):
            label = teacher.motor[0].clone()
            sure = teacher.sure_motors()[0] if labels == "sure" else None   # before the decision changes the teacher
            follow = torch.rand(envs, generator=coin) < beta
            logits, obs, rew, ended, state, label = student.decide(task, obs, state, follow, label, teacher)
            if on_decision is not None:
                on_decision(logits)
            right = torch.nn.functional.one_hot(label, 3).bool()
            if sure is not None:
                right = right | sure
                label = logits.detach().masked_fill(~right, -math.inf).argmax(-1)   # the best right motor
            ce = torch.logsumexp(logits, -1) - torch.logsumexp(logits.masked_fill(~right, -math.inf), -1)
            if hasattr(student, "extra_loss"):
                ce = ce + student.extra_loss(logits, label)
            loss = loss + (ce * alive).sum()
            decisions += int(alive.sum())
            agree += int((right.gather(-1, logits.detach().argmax(-1, keepdim=True))[:, 0] & alive).sum())
            ret += torch.where(alive, rew, torch.zeros_like(rew))
            alive = alive & ~ended
            if not bool(alive.any()):
                break
    return {"loss": loss / max(decisions, 1), "agreement": agree / max(decisions, 1), "return": float(ret.mean())}


def motor_spread(student: Network, *, envs: int = 36, steps: int = 20, seed: int = 5) -> tuple[float, float]:
    """(mean summed motor activity -- or readout -- per decision, mean distance of a motor's from the three motors'
    mean) on teacher-forced episodes: how much the network's motors differ, which the cross-entropy needs."""
    sums = []
    episode(student, envs=envs, steps=steps, seed=seed, beta=1.0, train=False,
            on_decision=lambda logits: sums.append(logits.detach() / student.logit_scale))
    s = torch.stack(sums)
    return float(s.mean()), float((s - s.mean(-1, keepdim=True)).abs().mean())


def evaluate(student, preset: str = "reduced") -> float:
    """Mean return of the student alone on ``preset`` (72 stratified 400-step episodes, seed 1)."""
    return episode(student, envs=EVAL_EPISODES, steps=task_config("tmaze", preset).steps, seed=EVAL_SEED, beta=0.0,
                   train=False, preset=preset)["return"]


def imitate(student, *, iters: int, envs: int, steps: int, lr: float, beta_iters: int, eval_every: int,
            preset: str = "reduced", eval_preset: str | None = None, anneal: tuple[int, int] | None = None,
            lr_min_frac: float = 1.0, keep_best: bool = False, labels: str = "teacher", log=print) -> list[dict]:
    """DAgger: ``iters`` Adam steps (gradient norm clipped to 1), one batch of ``envs`` episodes of ``steps`` env
    steps each on ``preset`` (comma-separated presets: one per iteration in turn); returns the per-iteration
    metrics (``eval``, alone on ``eval_preset`` -- default the last preset -- every ``eval_every`` iterations and at
    the end). ``anneal=(a, b)``: the student's ``mix`` rises linearly from 0 at iteration ``a`` to 1 at ``b``
    (``motor_channels`` readout: into the paper's readout). ``lr_min_frac``: cosine decay of the learning rate to that
    fraction of ``lr`` (1: constant). ``keep_best``: end with the weights of the best evaluation (ties: the later), not
    the last; when annealing, only evaluations at mix 1 count (the weights a .plx can hold). ``labels``: see
    :func:`episode`."""
    presets = preset.split(",")   # several: one per iteration in turn (rehearse an earlier stage)
    eval_preset = eval_preset or presets[-1]
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, iters), eta_min=lr * lr_min_frac)
    best = (-math.inf, None, 0)
    history, t0 = [], time.perf_counter()
    for it in range(iters):
        beta = max(0.0, 1.0 - it / max(1, beta_iters))
        if anneal is not None:
            a, b = anneal
            student.mix = 1.0 if it >= b else (it - a) / (b - a) if it >= a else 0.0   # (a <= it < b: b > a)
        m = episode(student, envs=envs, steps=steps, seed=10_000 + it, beta=beta, train=True,
                    preset=presets[it % len(presets)], labels=labels)
        opt.zero_grad()
        m["loss"].backward()
        m["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0))
        if math.isfinite(m["grad_norm"]):
            opt.step()
        sched.step()
        m.update(iteration=it + 1, beta=beta, loss=float(m["loss"].detach()), wall=time.perf_counter() - t0,
                 mix=getattr(student, "mix", None))
        if (it + 1) % eval_every == 0 or it + 1 == iters:
            m["eval"] = evaluate(student, eval_preset)
            if keep_best and m["eval"] >= best[0] and (anneal is None or student.mix >= 1.0):
                best = (m["eval"], {k: v.detach().clone() for k, v in student.state_dict().items()}, it + 1)
            mix = "" if getattr(student, "readout", None) != "motor_channels" else f"mix {m['mix']:.2f}  "
            log(f"{it + 1:5d}  loss {m['loss']:.3f}  agreement {m['agreement']:.3f}  beta {beta:.2f}  {mix}"
                f"alone on {eval_preset} {m['eval']:6.2f}  ({m['wall']:.0f} s)")
        history.append(m)
    if keep_best and best[1] is not None:
        student.load_state_dict(best[1])
        history[-1]["kept_iteration"] = best[2]
        log(f"kept the weights of iteration {best[2]} (alone on {eval_preset} {best[0]:.2f})")
    return history


def save_student(student, path: str, step: int = 0) -> None:
    """The student's weights and its class, as a plastix checkpoint (``trainer.runner.save_checkpoint``: atomic)."""
    from pathlib import Path
    from plastix.trainer.runner import save_checkpoint
    save_checkpoint(Path(path), step, student.state_dict(), {"student": type(student).__name__})


def load_student(student, path: str) -> None:
    """Load weights written by ``save_student`` into a student built with the same options (clear error if not;
    an unreadable or foreign file: ``trainer.runner.load_checkpoint``'s ValueError)."""
    import json
    from pathlib import Path
    from plastix.trainer.runner import load_checkpoint
    saved = load_checkpoint(Path(path))
    kind = json.loads(saved["config_json"]).get("student")
    if kind != type(student).__name__:
        raise SystemExit(f"{path} holds a {kind} student, not a {type(student).__name__}")
    try:
        student.load_state_dict(saved["state"])
    except RuntimeError as err:   # e.g. another readout or hidden size
        raise SystemExit(f"{path} does not fit this student (same --policy / --readout / --hidden?): {err}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="plain_gru", choices=["plain_gru", "enu", "gru", "lstm", "nfenu"])
    ap.add_argument("--hidden", type=int, default=128, help="plain_gru units")
    ap.add_argument("--no-efference", action="store_true", help="plain_gru: without its last motor as an input")
    ap.add_argument("--gru-steps", type=int, default=1,
                    help="plain_gru: GRU steps per decision (4: the networks' timing)")
    ap.add_argument("--iters", type=int, default=600)
    ap.add_argument("--envs", type=int, default=72, help="episodes per iteration")
    ap.add_argument("--steps", type=int, default=60, help="env steps per training episode")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--beta-iters", type=int, default=150)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--lr-min-frac", type=float, default=1.0, help="cosine decay of the learning rate to this "
                    "fraction of --lr over --iters (1: constant)")
    ap.add_argument("--keep-best", action="store_true", help="write (--out / --save-state) the weights of the best "
                    "evaluation, not the last")
    ap.add_argument("--task-config", default="reduced", help="T-maze preset to imitate on (reduced: the paper's task; "
                    "A,B: alternate iterations between presets, e.g. fixed_io,shuffle_outputs to rehearse a stage)")
    ap.add_argument("--eval-config", default=None, help="T-maze preset the student is evaluated on alone "
                    "(default: the last of --task-config)")
    ap.add_argument("--labels", default="teacher", choices=LABELS, help="sure: any motor right under every "
                    "hypothesis the teacher holds counts as right, not only its tie-break's (teacher: its motor)")
    ap.add_argument("--scale", type=float, default=4.0, help="network students: logits = scale x summed activity")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, help="network students: start from this ES network (.plx)")
    ap.add_argument("--init-noise", type=float, default=None, help="network students: std of the initial outputs "
                    "(NetworkSpec.init_noise, default 0.1)")
    ap.add_argument("--init-gain", type=float, default=1.0, help="network students: scale the initial genome")
    ap.add_argument("--memory-gain", type=float, default=0.0, help="ENU students: add this x I to the candidate "
                    "gate's memory block of both cells before training (~1: memory near an integrator)")
    ap.add_argument("--readout", default="motor0", choices=Network.READOUTS, help="network students: what the env "
                    "acts on (motor0: the paper's channel 0 of the motor neurons; linear / circulant: a learned map "
                    "from all six neurons)")
    ap.add_argument("--anneal", default=None, metavar="A:B", help="motor_channels readout: blend it into the "
                    "paper's readout, mix 0 at iteration A -> 1 at B (then --out can write the network)")
    ap.add_argument("--surrogate", type=float, default=0.0, help="ENU students read through channel 0: the gradient "
                    "of the motors' clamp where it is active, in the logits only (0: exact)")
    ap.add_argument("--teacher-frame", action="store_true", help="network students: a rotation-equivariant teacher "
                    "(its tie-breaks in the frame of the student's first press)")
    ap.add_argument("--out", default=None, help="network students: write the trained network here (.plx)")
    ap.add_argument("--save-state", default=None, help="write the student's weights (any policy / readout) here")
    ap.add_argument("--load-state", default=None, help="start from weights written by --save-state (a curriculum)")
    args = ap.parse_args()
    anneal = None
    if args.anneal:
        try:
            anneal = tuple(int(x) for x in args.anneal.split(":"))
            assert len(anneal) == 2 and 0 <= anneal[0] <= anneal[1]
        except (ValueError, AssertionError):
            raise SystemExit(f"--anneal wants A:B with 0 <= A <= B, got {args.anneal!r}") from None
        if args.readout != "motor_channels":
            raise SystemExit("--anneal blends the motor_channels readout into the paper's: "
                             "use --readout motor_channels")
    paper_at_end = args.readout == "motor0" or (anneal is not None and anneal[1] < args.iters)
    if args.out and (args.policy == "plain_gru" or not paper_at_end):   # before training, not after
        raise SystemExit("--out: only a network student that ends on the paper's readout (motor0, or motor_channels "
                         "annealed to it within --iters) is an ES network a .plx can hold")
    torch.set_num_threads(1)
    if args.policy == "plain_gru":
        student = PlainGRU(args.hidden, args.seed, efference=not args.no_efference, steps=args.gru_steps)
    else:
        student = Network(args.policy, args.scale, args.seed, args.init_noise, readout=args.readout,
                          teacher_frame=args.teacher_frame, surrogate=args.surrogate)
        if args.init:
            from plastix.ir import load
            from plastix.trainer.experiments.enu_net import genome_from_graph
            student.genome.data.copy_(genome_from_graph(student.spec, load(args.init)))
        student.genome.data.mul_(args.init_gain)
        if args.memory_gain:
            from plastix.trainer.experiments.enu_net import add_memory_gain
            add_memory_gain(student.spec, student.genome.data, args.memory_gain)
    if args.load_state:
        load_student(student, args.load_state)
    if args.policy != "plain_gru":
        mean, spread = motor_spread(student)
        what = "motor activity" if args.readout == "motor0" else f"{args.readout} readout"
        print(f"initial network: summed {what} per decision {mean:.3f}, a motor's distance from the three's "
              f"mean {spread:.3f}")
    history = imitate(student, iters=args.iters, envs=args.envs, steps=args.steps, lr=args.lr,
                      beta_iters=args.beta_iters, eval_every=args.eval_every, preset=args.task_config,
                      eval_preset=args.eval_config, anneal=anneal, lr_min_frac=args.lr_min_frac,
                      keep_best=args.keep_best, labels=args.labels)
    if args.save_state:
        save_student(student, args.save_state, args.iters)
    if args.out:
        from plastix.ir import save
        save(student.spec.to_graph(student.genome.detach().numpy(), metadata={
            "task": "tmaze", "trainer": "dagger_hypothesis_agent", "iterations": args.iters, "seed": args.seed,
            "kept_iteration": history[-1].get("kept_iteration", args.iters), "task_config": args.task_config,
            "memory_gain": args.memory_gain, "labels": args.labels}),
             args.out)


if __name__ == "__main__":
    main()
