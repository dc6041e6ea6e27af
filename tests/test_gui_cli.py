"""`irplan [PATH] --screenshot OUT.png` end to end, bad paths, remembered window state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def _irplan(*args: str, env_extra: dict[str, str] | None = None,
            timeout_s: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "irplan.app.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout_s)


def test_bad_path_gives_one_line_and_exit_2(tmp_path: Path) -> None:
    res = _irplan(str(tmp_path / "nope"), "--screenshot", str(tmp_path / "x.png"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "Traceback" not in res.stderr
    assert not (tmp_path / "x.png").exists()


def test_folder_without_ct_gives_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not dicom")
    res = _irplan(str(tmp_path / "empty"), "--screenshot", str(tmp_path / "x.png"))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CT series" in lines[0], res.stderr
    assert not (tmp_path / "x.png").exists()


def test_screenshot_of_a_case_folder_shows_all_views(tmp_path: Path) -> None:
    from PIL import Image

    from irplan.io.phantom_writer import write_phantom_case

    case = write_phantom_case(tmp_path / "case", seed=0, size=(64, 64, 32),
                              spacing_mm=(5.5, 5.5, 7.0))
    out = tmp_path / "shot.png"
    res = _irplan(str(case), "--screenshot", str(out),
                  env_extra={"IRPLAN_CONFIG_DIR": str(tmp_path / "cfg")})
    assert res.returncode == 0, res.stderr
    assert "screenshot saved" in res.stdout
    img = np.asarray(Image.open(out).convert("RGB")).astype(int)
    h, w, _ = img.shape
    assert (w, h) == (1600, 1000)
    # the four view quadrants (right of the side panel) each show a picture, not black
    x0 = int(w * 0.25)
    quads = [img[int(h * 0.12):int(h * 0.5), x0:int((x0 + w) / 2)],
             img[int(h * 0.12):int(h * 0.5), int((x0 + w) / 2):],
             img[int(h * 0.55):int(h * 0.95), x0:int((x0 + w) / 2)],
             img[int(h * 0.55):int(h * 0.95), int((x0 + w) / 2):]]
    for q in quads:
        assert q.mean() > 25 and q.std() > 20
    # the research-software notice is in the window: an amber banner row near the top
    amber = (img[..., 0] > 90) & (img[..., 1] > 60) & (img[..., 2] < 40)
    assert amber[: int(h * 0.1)].sum() > 2000


def test_window_state_is_remembered_in_config_dir(qapp, tmp_path, monkeypatch) -> None:
    from PySide6.QtTest import QTest

    from irplan.app.gui_main import make_app
    from irplan.app.main_window import MainWindow

    monkeypatch.setenv("IRPLAN_CONFIG_DIR", str(tmp_path / "cfg"))
    make_app()
    win = MainWindow()
    win.show()
    QTest.qWaitForWindowExposed(win)
    win.resize(1111, 777)
    win.apply_window_preset("bone")
    QTest.qWait(50)
    win.close()
    win.deleteLater()
    assert (tmp_path / "cfg" / "irplan.ini").exists()
    win2 = MainWindow()
    try:
        assert (win2.width(), win2.height()) == (1111, 777)
        assert win2.views.window == (1800.0, 400.0)
    finally:
        win2.close()
        win2.deleteLater()
