"""The phantom case in the main window: real DICOM load, masks, pictures.

Small grids (80x80x40 voxels) keep the module fast; the anatomy in LPS is the same for
the axial, oblique and flipped variants, so the views must show it at the same place.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from irplan.io.phantom_writer import load_truth
from irplan.planning.phantom_truth import PhantomTruth

pytestmark = pytest.mark.gui

SIZE = (80, 80, 40)
SPACING_MM = (4.5, 4.5, 6.0)


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, Path]:
    from irplan.io.phantom_writer import write_phantom_case

    root = tmp_path_factory.mktemp("gui_phantoms")
    out = {}
    for v in ("axial", "oblique", "flipped"):
        out[v] = write_phantom_case(root / v, seed=0, variant=v, size=SIZE,
                                    spacing_mm=SPACING_MM)
    return out


def _truth(case: Path) -> PhantomTruth:
    return load_truth(case)


def _open(win, case: Path, qtbot, ct_only: bool = False) -> None:
    """Open a case folder (CT + masks + plan), or with ``ct_only`` its planning DICOM
    folder and then the tumour/liver/vessel masks through Case.set_structure (as other
    modules add structures; no plan, so no zone prediction competes for the CPU)."""
    loaded = []
    win.case_loaded.connect(lambda: loaded.append(1))
    win.open_path(case / "planning" if ct_only else case)
    qtbot.waitUntil(lambda: bool(loaded) or bool(win.messages and win.case.ct is None),
                    timeout=60000)
    assert loaded, win.messages
    if ct_only:
        from irplan.io.masks import read_mask

        for key in ("liver", "tumor", "portal_vein", "hepatic_vein"):
            win.case.set_structure(key, read_mask(case / "masks" / "planning"
                                                  / f"{key}.nii.gz"))
    assert win.wait_for_surfaces(120)
    win.views.render_now()


def _yellow(rgb: np.ndarray) -> bool:
    return bool(rgb[0] > 1.5 * rgb[2] + 20 and rgb[1] > 1.5 * rgb[2] + 20)


def test_phantom_opens_with_structures_and_tumour_in_3d(main_window, variants, qtbot) -> None:
    case = variants["axial"]
    _open(main_window, case, qtbot)
    truth = _truth(case)
    centre = np.array(truth.tumor.center_lps_mm)
    v = main_window.views
    # opened on the planning series, all planning structures shown, centred on the tumour
    assert main_window.case.ct is not None and main_window.case.ct.size_xyz == SIZE
    assert {"tumor", "liver", "portal_vein", "hepatic_vein"} <= set(v.structure_keys())
    assert "body" not in v.structure_keys() and "ablation_zone" not in v.structure_keys()
    np.testing.assert_allclose(v.crosshair_lps_mm, centre, atol=3.0)
    # window preset 5 = the series' own WindowWidth/WindowCenter
    md = main_window.case.ct.metadata
    main_window.apply_window_preset("dicom")
    assert v.window == (float(md["window_width"]), float(md["window_center"]))
    main_window.apply_window_preset("abdomen")
    assert len(main_window.case.plan.needles) >= 2
    s3 = v.scene3d
    for key in ("bone", "lung"):    # the user hides what hides the liver
        v.set_structure_style(key, visible=False)
    s3.set_planes_visible(False)     # the plane frames pass through the tumour centre
    for preset in ("anterior", "right", "superior"):
        s3.set_camera_preset(preset)
        img = s3.capture_rgb()
        x, y = s3.world_to_display(centre)
        row, col = img.shape[0] - 1 - int(round(y)), int(round(x))
        # most of a small patch around the projected centre is tumour-coloured (a needle
        # drawn in front may cross it)
        patch = img[row - 3:row + 4, col - 3:col + 4].reshape(-1, 3).astype(int)
        share = np.mean([_yellow(p) for p in patch])
        assert share > 0.6, (preset, share, patch.mean(axis=0))


def test_oblique_and_flipped_phantoms_show_same_anatomy(main_window, variants, qtbot) -> None:
    truth = _truth(variants["axial"])
    centre = np.array(truth.tumor.center_lps_mm)
    pics: dict[str, dict[str, np.ndarray]] = {}
    for name in ("axial", "oblique", "flipped"):
        _open(main_window, variants[name], qtbot, ct_only=True)
        v = main_window.views
        main_window.apply_window_preset("liver")
        v.set_crosshair(centre)
        for view in v.mprs():
            cam = view.renderer.GetActiveCamera()
            cam.SetFocalPoint(*centre)
            cam.SetPosition(*(centre - view.normal * 600))
            cam.SetParallelScale(90.0)
            view.set_crosshair(centre)
        v.render_now()
        pics[name] = {view.name: view.capture_rgb().astype(float) for view in v.mprs()}
        # the tumour contour surrounds the tumour centre on every slice view
        for view in v.mprs():
            img = pics[name][view.name]
            x, y = view.world_to_display(centre)
            row, col = img.shape[0] - 1 - int(round(y)), int(round(x))
            r_px = int(truth.tumor.radius_mm / (2 * 90.0 / img.shape[0]))
            ring = [img[row + int(dr), col + int(dc)] for a in np.linspace(0, 2 * np.pi, 48)
                    for rr in range(r_px - 4, r_px + 5)
                    for dr, dc in [(rr * np.sin(a), rr * np.cos(a))]]
            assert any(_yellow(p) for p in ring), (name, view.name)
    for name in ("oblique", "flipped"):
        for view_name in ("axial", "coronal", "sagittal"):
            a, b = pics["axial"][view_name], pics[name][view_name]
            h, w, _ = a.shape
            crop = (slice(h // 6, h - h // 6), slice(w // 6, w - w // 6))
            # noise and a coarse rotated voxel grid differ pixel by pixel (thin ribs,
            # 3-mm vessels); compare the anatomy at the scale of a few voxels
            ga = gaussian_filter(a[crop].mean(axis=-1), 6.0)
            gb = gaussian_filter(b[crop].mean(axis=-1), 6.0)
            corr = np.corrcoef(ga.ravel(), gb.ravel())[0, 1]
            assert corr > 0.85, (name, view_name, corr)
            assert abs(ga.mean() - gb.mean()) < 12, (name, view_name)


def test_cancel_while_loading_keeps_the_window_usable(main_window, variants, qtbot) -> None:
    before = main_window.case.ct
    done = []
    main_window.tasks.busy_changed.connect(lambda busy: done.append(busy))
    main_window.open_path(variants["flipped"])
    assert main_window.cancel_button.isVisible() and main_window.progress.isVisible()
    main_window.tasks.cancel_all()
    qtbot.waitUntil(lambda: not main_window._loading, timeout=60000)
    assert main_window.case.ct is before, "a cancelled load must not replace the case"
    assert "cancelled" in main_window.statusBar().currentMessage()
    # and the next open works
    _open(main_window, variants["flipped"], qtbot, ct_only=True)
    assert main_window.case.ct is not before
