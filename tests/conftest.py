"""Shared fixtures: small systems that start fast."""

from __future__ import annotations

import numpy as np
import pytest

from neurosplit.chip import GENERIC_TARGETS
from neurosplit.host._network import feedforward, place


@pytest.fixture
def small_placement():
    """16 inputs -> 24 hidden -> 4 outputs with weights that make hidden neurons fire a few times."""
    rng = np.random.default_rng(5)
    net = feedforward(16, 24, 4, GENERIC_TARGETS, rng, hidden_init=(6.0, 12.0), output_init=(10.0, 12.0))
    return net, place(net)
