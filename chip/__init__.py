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
from ._spikes import SpikeLimitError, SpikeRecord  # noqa: E402
from ._lif_event import EventResult, simulate_events  # noqa: E402
from ._lif_step import StepResult, simulate_steps  # noqa: E402
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
from ._adc import (  # noqa: E402
    CADC_MAX,
    CADC_MIN_PERIOD_TICKS,
    CADC_PERIOD_TICKS,
    MADC_CODES_PER_LSB,
    MADC_MAX,
    MADC_MAX_NEURONS,
    MADC_PERIOD_TICKS,
    cadc_read,
    cadc_sample_ticks,
    check_madc_neurons,
    madc_read,
    madc_sample_ticks,
    madc_to_lsb,
)
from ._mismatch import (  # noqa: E402
    CAPMEM_MAX,
    Die,
    MismatchSpec,
    NeuronCodes,
    draw_die,
    nominal_codes,
    noise_rng,
    realised_params,
    threshold_jitter,
)
from ._synapses import (  # noqa: E402
    CURRENT_LSB_PER_CODE,
    CodeGradient,
    Mapping,
    QuantReport,
    RowLayout,
    SynapseArray,
    code_gradient,
    effective_weights,
    map_network,
    plan_rows,
    quantise,
    rows_for_labels,
    signed_codes,
    source_labels,
    write_weights,
)
from ._calibration import CalibrationResult, CalibSettings, ParamResidual, calibrate  # noqa: E402
from ._surrogate import (  # noqa: E402
    READOUTS,
    SUPERSPIKE_BETA_PER_LSB,
    ReadoutLoss,
    count_regulariser,
    readout_cross_entropy,
    readout_grad,
    readout_logits,
    spike_raster,
    superspike,
    surrogate_backward,
)
