"""neurosplit.host."""

from ._yinyang import YINYANG_SEEDS, YINYANG_SIZES, encode_ttfs, yin_yang, yin_yang_class  # noqa: E402
