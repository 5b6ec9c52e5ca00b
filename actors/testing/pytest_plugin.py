"""pytest plugin of the neurosplit test kit (registered as the ``pytest11`` entry point ``neurosplit``).

Fixtures (trio fixtures: they need pytest-trio, with ``trio_mode = true`` or ``@pytest.mark.trio``):

- ``neurosplit_system``: a whole system in this process (actors.System), handshake done; shut
  down after the test.
- ``neurosplit_peer``: a fresh board in this process and a ScriptedPeer as its host (no
  handshake yet): the test plays the host frame by frame.
- ``neurosplit_board``: a board server on an ephemeral port of 127.0.0.1; its ``"HOST:PORT"``.
- ``neurosplit_recorder``: a FrameRecorder writing ``neurosplit.nsrec`` in the test's tmp_path
  (records also kept in ``.records``); when a test requests it, ``neurosplit_system`` and
  ``neurosplit_peer`` record every link into it. Closed after the test.

Plain fixtures to override in a conftest.py: ``neurosplit_config`` (the SystemConfig of the
system and the peer's board; default quick_config(): chip 0, no calibration),
``neurosplit_wrap`` (per link, a transport wrapper such as ``fault_wrapper(...)[0]``; default
none) and ``neurosplit_chip_seed`` (the board server's die, default 0).

Loading the plugin is cheap: its parent packages import their names on first use, and the fixtures
import the runtime (numba, mostly) only when a test requests one; ``-p no:neurosplit`` turns it off.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def neurosplit_config():
    """The SystemConfig of ``neurosplit_system`` and ``neurosplit_peer`` (override to change it)."""
    from ._harness import quick_config

    return quick_config()


@pytest.fixture
def neurosplit_wrap():
    """Transport wrappers by link name for ``neurosplit_system`` and ``neurosplit_peer`` (override
    to inject faults: ``{"chip": fault_wrapper("chip", FaultSpec(drop=0.01), seed=1)[0]}``)."""
    return {}


@pytest.fixture
def neurosplit_chip_seed():
    """The die of the ``neurosplit_board`` server (override to change it)."""
    return 0


@pytest.fixture
def neurosplit_recorder(tmp_path):
    """A FrameRecorder into ``tmp_path / "neurosplit.nsrec"``, records also kept in memory."""
    from ._recording import FrameRecorder

    recorder = FrameRecorder(tmp_path / "neurosplit.nsrec", keep=True, meta={"command": "pytest"})
    yield recorder
    recorder.close()


def _recorder(request):
    return request.getfixturevalue("neurosplit_recorder") if "neurosplit_recorder" in request.fixturenames else None


@pytest.fixture
async def neurosplit_system(request, neurosplit_config, neurosplit_wrap):
    """A running System in this process (handshake done); records into neurosplit_recorder if requested."""
    from ._harness import running_system

    async with running_system(neurosplit_config, wrap=neurosplit_wrap, recorder=_recorder(request)) as system:
        yield system


@pytest.fixture
async def neurosplit_peer(request, neurosplit_config, neurosplit_wrap):
    """A ScriptedPeer as the host of a fresh in-process board (say hello first)."""
    from ._harness import board_peer

    async with board_peer(neurosplit_config, wrap=neurosplit_wrap, recorder=_recorder(request)) as peer:
        yield peer


@pytest.fixture
async def neurosplit_board(neurosplit_chip_seed):
    """``"127.0.0.1:PORT"`` of a board server running in this test's process."""
    from ._harness import serving_board

    async with serving_board(neurosplit_chip_seed) as address:
        yield address
