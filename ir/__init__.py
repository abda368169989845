"""plastix.ir — the graph IR: populations, projections, modulators and plasticity rules as data.

Imports only the standard library, numpy and networkx (never torch or lava).
"""
from .builder import GraphBuilder as GraphBuilder
from .errors import IRValidationError as IRValidationError
from .errors import IRVersionError as IRVersionError
from .errors import UnknownKindError as UnknownKindError
from .errors import UnsupportedKindError as UnsupportedKindError
from .graph import IR_SCHEMA_VERSION as IR_SCHEMA_VERSION
from .graph import Graph as Graph
from .neurons import CubaLIF as CubaLIF
from .neurons import ENUCell as ENUCell
from .neurons import GatedPopulation as GatedPopulation
from .neurons import GRUCell as GRUCell
from .neurons import Input as Input
from .neurons import LIReadout as LIReadout
from .neurons import LSTMCell as LSTMCell
from .neurons import Population as Population
from .registry import kinds as kinds
from .registry import register_kind as register_kind
from .rules import BCM as BCM
from .rules import EligibilityTrace as EligibilityTrace
from .rules import GatedSynapse as GatedSynapse
from .rules import HebbianDecay as HebbianDecay
from .rules import LoihiRule as LoihiRule
from .rules import ModulationMode as ModulationMode
from .rules import Oja as Oja
from .rules import PairSTDP as PairSTDP
from .rules import QAggregation as QAggregation
from .rules import QUpdateForm as QUpdateForm
from .rules import Rule as Rule
from .rules import SynapticQ as SynapticQ
from .rules import ThreeFactor as ThreeFactor
from .rules import TraceKind as TraceKind
from .rules import TripletSTDP as TripletSTDP
from .rules import consumes as consumes
from .serialize import dumps as dumps
from .serialize import from_dict as from_dict
from .serialize import load as load
from .serialize import loads as loads
from .serialize import save as save
from .serialize import to_dict as to_dict
from .synapses import Activation as Activation
from .synapses import Modulator as Modulator
from .synapses import Projection as Projection
