"""The :class:`Graph`: populations, projections and modulators, with declared inputs/outputs.

Construction validates every cross reference and shape and raises :class:`IRValidationError`
naming both ends of a bad edge (``"in_hid: pre 'x' out (20,) -> post 'h' weight (48, 21)"``).
``dt`` is the length of one step in seconds; the dynamics themselves are discrete (see
``docs/semantics.md``), and ``dt`` is only used to convert to and from continuous-time formats
such as NIR.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from .errors import IRValidationError
from .neurons import GatedPopulation, Input, Population
from .registry import register_kind
from .rules import (
    BCM,
    EligibilityTrace,
    GatedSynapse,
    HebbianDecay,
    LoihiRule,
    ModulationMode,
    Oja,
    PairSTDP,
    Rule,
    SynapticQ,
    ThreeFactor,
    TripletSTDP,
)
from .spec import IRNode, children, mapping, names, real
from .synapses import Modulator, Projection

IR_SCHEMA_VERSION = 1


@register_kind("graph", "graph")
@dataclass(frozen=True, eq=False)
class Graph(IRNode):
    """A plastic network. ``inputs`` defaults to every :class:`Input` population in order."""

    populations: tuple = children("population")
    projections: tuple = children("projection")
    modulators: tuple = children("modulator")
    inputs: tuple = names()
    outputs: tuple = names()
    dt: float = real(gt=0.0, default=1e-3)
    metadata: dict = mapping()

    # -- lookups -----------------------------------------------------------------------------
    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(f"no population named {name!r}; populations: {[p.name for p in self.populations]}")

    def projection(self, name: str) -> Projection:
        for p in self.projections:
            if p.name == name:
                return p
        raise KeyError(f"no projection named {name!r}; projections: {[p.name for p in self.projections]}")

    def modulator(self, name: str) -> Modulator:
        for m in self.modulators:
            if m.name == name:
                return m
        raise KeyError(f"no modulator named {name!r}; modulators: {[m.name for m in self.modulators]}")

    @property
    def plastic_projections(self) -> tuple[Projection, ...]:
        return tuple(p for p in self.projections if p.rule is not None)

    def without_plasticity(self) -> "Graph":
        """The non-plastic ablation: every projection keeps its stored weights and loses its learning rule,
        and the modulators (nothing reads them any more) are dropped. Refuses graphs whose rules compute
        the synaptic output (:class:`GatedSynapse`): without the rule they would be another network."""
        gated = [p.name for p in self.projections if isinstance(p.rule, GatedSynapse)]
        if gated:
            raise ValueError(f"without_plasticity: {gated} are gated synapses (the rule is the synapse), not "
                             "plastic weights")
        return self.replace(projections=tuple(p.replace(rule=None) for p in self.projections), modulators=())

    def topology(self) -> nx.MultiDiGraph:
        """Populations as nodes; projections (key = name) and modulators as edges.

        Modulator edges go from the source population to the post population of every projection
        whose rule reads the modulator, with ``kind="modulator"``. Cycles are recurrence.
        """
        g = nx.MultiDiGraph()
        for p in self.populations:
            g.add_node(p.name, kind=p.kind, size=p.size)
        for pr in self.projections:
            g.add_edge(pr.pre, pr.post, key=pr.name, kind="projection", plastic=pr.rule is not None)
            for m in (pr.rule.modulator_names if pr.rule is not None else ()):
                g.add_edge(self.modulator(m).source, pr.post, key=f"{m}->{pr.name}", kind="modulator")
        return g

    # -- validation --------------------------------------------------------------------------
    def _check(self) -> None:
        seen: dict[str, str] = {}
        for group, items in (("populations", self.populations), ("projections", self.projections),
                             ("modulators", self.modulators)):
            for item in items:
                if item.name in seen:
                    raise IRValidationError(item.name, "name", f"duplicate name (also used in {seen[item.name]})")
                seen[item.name] = group
        pops = {p.name: p for p in self.populations}
        if not self.populations:
            raise IRValidationError("graph", "populations", "a graph needs at least one population")

        declared_inputs = tuple(p.name for p in self.populations if isinstance(p, Input))
        if not self.inputs:
            object.__setattr__(self, "inputs", declared_inputs)
        for name in self.inputs:
            if name not in pops:
                raise IRValidationError("graph", "inputs", f"{name!r} is not a population")
            if not isinstance(pops[name], Input):
                raise IRValidationError("graph", "inputs", f"{name!r} is a {pops[name].kind}, not an input")
        if set(self.inputs) != set(declared_inputs) or len(set(self.inputs)) != len(self.inputs):
            raise IRValidationError("graph", "inputs", f"must list every Input population once: {declared_inputs}")
        if not self.outputs:
            raise IRValidationError("graph", "outputs", "declare at least one output population")
        for name in self.outputs:
            if name not in pops:
                raise IRValidationError("graph", "outputs", f"{name!r} is not a population")

        mods = {m.name: m for m in self.modulators}
        for m in self.modulators:
            if m.source not in pops:
                raise IRValidationError(m.name, "source", f"unknown population {m.source!r}")
            src = pops[m.source]
            width = src.size * src.out_channels
            if m.weight.shape[1] != width:
                raise IRValidationError(m.name, "weight", f"source {m.source!r} out ({src.size}, {src.out_channels}) "
                                        f"-> modulator weight {m.weight.shape}: needs {width} columns")
        for pr in self.projections:
            self._check_projection(pr, pops, mods)
        self._check_all_shapes(pops)

    def _check_all_shapes(self, pops: dict) -> None:
        """Every array of every node (nested rules and cells included) against its symbolic shape,
        with every named dimension resolved: ``pre``/``post`` from the projection's ends, ``src``
        from the modulator's source."""
        for p in self.populations:
            p.check_dims({}, p.name, strict=True)
        for m in self.modulators:
            src = pops[m.source]
            m.check_dims({"src": src.size * src.out_channels}, m.name, strict=True)
        for pr in self.projections:
            pr.check_dims({"pre": pops[pr.pre].size, "post": pops[pr.post].size}, pr.name, strict=True)

    def _check_projection(self, pr: Projection, pops: dict, mods: dict) -> None:
        for end in ("pre", "post"):
            if getattr(pr, end) not in pops:
                raise IRValidationError(pr.name, end, f"unknown population {getattr(pr, end)!r}")
        pre, post = pops[pr.pre], pops[pr.post]
        edge = f"pre {pre.name!r} out ({pre.size}, {pre.out_channels}) -> post {post.name!r} in ({post.size}, {post.in_channels})"
        if isinstance(post, Input):
            raise IRValidationError(pr.name, "post", f"{post.name!r} is an Input population and takes no synapses")
        if pr.weight.shape != (post.size, pre.size):
            raise IRValidationError(pr.name, "weight", f"{edge}: weight {pr.weight.shape} should be {(post.size, pre.size)}")
        rule = pr.rule
        if isinstance(rule, GatedSynapse):
            cell = rule.cell
            if cell.in_channels != pre.out_channels or cell.out_channels != post.in_channels:  # type: ignore[attr-defined]
                raise IRValidationError(pr.name, "rule.cell", f"{edge}: cell maps {cell.in_channels} -> {cell.out_channels} channels")  # type: ignore[attr-defined]
            if rule.post_feedback and post.out_channels != cell.out_channels:  # type: ignore[attr-defined]
                raise IRValidationError(pr.name, "rule.post_feedback", f"{edge}: the post population sends {post.out_channels} channels, the cell's feedback takes {cell.out_channels}")  # type: ignore[attr-defined]
        elif pre.out_channels != post.in_channels:
            raise IRValidationError(pr.name, "weight", f"{edge}: channel widths differ (use a gated synapse to map them)")
        if rule is None:
            return
        if isinstance(rule, EligibilityTrace):
            raise IRValidationError(pr.name, "rule", "an eligibility trace changes no weight by itself; wrap it in a ThreeFactor rule")
        if isinstance(rule, (PairSTDP, TripletSTDP, EligibilityTrace, ThreeFactor, LoihiRule, HebbianDecay, Oja, BCM)):
            if pre.out_channels != 1 or post.out_channels != 1:
                raise IRValidationError(pr.name, "rule", f"{rule.kind} needs single-channel pre and post populations ({edge})")
        for mname in rule.modulator_names:
            if mname not in mods:
                raise IRValidationError(pr.name, "rule.modulator", f"unknown modulator {mname!r}; modulators: {sorted(mods)}")
            self._check_modulator_fit(pr, rule, mods[mname])

    @staticmethod
    def _check_modulator_fit(pr: Projection, rule: Rule, m: Modulator) -> None:
        n_post, n_pre = pr.weight.shape
        if isinstance(rule, ThreeFactor):
            want = {ModulationMode.GLOBAL: 1, ModulationMode.PER_POST: n_post,
                    ModulationMode.PER_PRE: n_pre, ModulationMode.PER_SYNAPSE: n_post * n_pre}[rule.mode]
            what = f"mode {rule.mode.value!r}"
        elif isinstance(rule, (HebbianDecay, Oja, BCM)):
            want, what = n_post, "a neuromodulated (NDP) rule, which modulates r_post"
            if m.channels != 1:
                raise IRValidationError(pr.name, "rule.modulator", f"{m.name!r} has {m.channels} channels; {what} needs 1")
        elif isinstance(rule, LoihiRule):
            if m.size not in (1, n_post):
                raise IRValidationError(pr.name, "rule.modulator", f"{m.name!r} has size {m.size}; the third factor y2 is global (1) or per post neuron ({n_post})")
            return
        elif isinstance(rule, SynapticQ):
            want, what = 1, "the synaptic-Q reward, which is global"
        else:  # pragma: no cover - every modulated kind is listed above
            return
        if m.size != want:
            raise IRValidationError(pr.name, "rule.modulator", f"modulator {m.name!r} has size {m.size}; {what} needs {want}")

    def summary(self) -> str:
        """A short human-readable description."""
        lines = [f"Graph dt={self.dt}s, inputs={list(self.inputs)}, outputs={list(self.outputs)}"]
        for p in self.populations:
            extra = f" cell={p.cell.kind}" if isinstance(p, GatedPopulation) else ""
            lines.append(f"  population {p.name:<16} {p.kind:<10} size={p.size}{extra}")
        for pr in self.projections:
            rule = pr.rule.kind if pr.rule is not None else "static"
            nnz = int(pr.mask.sum()) if pr.mask is not None else pr.weight.size
            lines.append(f"  projection {pr.name:<16} {pr.pre} -> {pr.post} ({nnz} synapses, {rule})")
        for m in self.modulators:
            lines.append(f"  modulator  {m.name:<16} from {m.source} size={m.size} channels={m.channels}")
        return "\n".join(lines)
