"""The report's slice pictures outline every lesion (Tumour 2 too, in its own colour), not
only "tumor" (issue 17: several lesions)."""

from __future__ import annotations

import numpy as np

from irplan.planning.structures import structure_color
from irplan.planning.volume import Volume
from irplan.viewers.report_pictures import mpr_image


def test_slice_picture_outlines_the_second_lesion() -> None:
    ct = Volume(np.zeros((20, 80, 80), np.int16), [-40.0, -40.0, -10.0], [1.0, 1.0, 1.0])
    c = ct.voxel_centres_lps()
    t1 = ct.with_array((np.linalg.norm(c - [-15.0, 0.0, 0.0], axis=-1) <= 6).astype(np.uint8))
    t2 = ct.with_array((np.linalg.norm(c - [18.0, 0.0, 0.0], axis=-1) <= 5).astype(np.uint8))
    img = mpr_image(ct, {"tumor": t1, "tumor_2": t2}, [], None, np.zeros(3),
                    fov_mm=80.0, size_px=160)
    right = img[:, 80:]                    # the image's right half: patient's left (+L)

    def near(rgb) -> np.ndarray:
        return np.all(np.abs(right - np.asarray(rgb)) < 0.08, axis=-1)

    assert structure_color("tumor_2") != structure_color("tumor")
    assert near(structure_color("tumor_2")).sum() > 20       # Tumour 2's outline is drawn
    assert near(structure_color("tumor")).sum() == 0          # and Tumour 1 is elsewhere
