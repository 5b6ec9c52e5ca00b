"""neurosplit.host."""

from ._yinyang import YINYANG_SEEDS, YINYANG_SIZES, encode_ttfs, yin_yang, yin_yang_class  # noqa: E402
from ._digits import DIGITS_SPLIT_SEED, encode_latency, load_digits_split  # noqa: E402
from ._tasks import TASKS, TaskData, encode_task, load_task  # noqa: E402
from ._surrogate import SurrogateConfig, SurrogateModel, deploy, evaluate_on_board, train_surrogate  # noqa: E402
from ._surrogate_software import evaluate_software, train_software  # noqa: E402
from ._robust import RobustConfig, level_spec  # noqa: E402
from ._mismatch_study import STRATEGIES, StudyConfig, plot_study, summarise  # noqa: E402
