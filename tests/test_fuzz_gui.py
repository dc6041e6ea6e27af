"""Issue 13: a DICOM loader warning reaches the GUI user (status bar and messages), as it
reaches the command-line user on stderr (tests/test_fuzz_inputs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_fuzz_inputs import tiny_ct  # noqa: E402

pytestmark = pytest.mark.gui
WINDOW_SIZE = (1000, 700)


def test_uneven_spacing_warning_is_shown_in_the_window(main_window, qtbot,
                                                       tmp_path: Path) -> None:
    ct = tmp_path / "ct"
    tiny_ct(ct, positions_mm=[0.0, 2.0, 4.0, 6.7, 8.0, 10.0, 12.0, 14.0])
    win = main_window
    with qtbot.waitSignal(win.case_loaded, timeout=240000):
        win.open_path(ct)
    assert win.tasks.wait_idle(240)
    shown = [m for m in win.messages if "non-uniform slice spacing" in m]
    assert shown, win.messages
    assert "interpolation" in shown[0]
