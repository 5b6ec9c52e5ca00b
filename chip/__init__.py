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
from ._eventprop import DENOM_MIN_LSB, Adjoint, adjoint_sweep, loss_and_grad  # noqa: E402
from ._losses import (  # noqa: E402
    MSE_DEFAULTS,
    TTFS_DEFAULTS,
    LossResult,
    first_spike_times,
    spike_time_mse,
    ttfs_cross_entropy,
)
from ._optim import AdamState, adam_init, adam_step, to_fixed_point  # noqa: E402
