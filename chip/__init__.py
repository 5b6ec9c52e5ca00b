"""neurosplit.chip."""

from ._params import (  # noqa: E402
    GENERIC_TARGETS,
    N_NEURONS,
    N_ROWS,
    NEURON_LABEL_BASE,
    WEIGHT_MAX,
    YINYANG_TARGETS,
    NeuronParams,
    uniform_params,
)
from ._event_links import EventLaneModel, LaneState, admit_events  # noqa: E402
from ._core import AnalogCore, CoreConfig  # noqa: E402
from ._learner import Learner, LearnerConfig, RowMap, StepOutcome  # noqa: E402
