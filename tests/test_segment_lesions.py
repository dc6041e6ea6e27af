"""Tumour segmentation that holds on real lesions (issue 17): rim-aware one click with leak
checks, scribbles, one structure per lesion on import."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from irplan.planning import segmentation as seg
from irplan.planning.errors import InputError
from irplan.planning.volume import Volume


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a != 0, b != 0
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


def deepest(arr: np.ndarray, vol: Volume) -> np.ndarray:
    d = ndi.distance_transform_edt(arr != 0, sampling=vol.spacing_mm[::-1])
    kji = np.unravel_index(int(np.argmax(d)), d.shape)
    return vol.index_to_lps(np.array(kji[::-1], float))


def rim_lesion(organ_x_mm: float | None = None) -> tuple[Volume, np.ndarray]:
    """40 HU core (r 9 mm) in a 75 HU rim (to r 14 mm) in 105 HU liver, noise 10 HU; with
    ``organ_x_mm`` a 40 HU organ fills x > organ_x_mm (a broad contact of lesion density)."""
    g = Volume(np.zeros((36, 70, 70), np.int16), (-35.0, -35.0, -27.0), (1.0, 1.0, 1.5))
    p = g.voxel_centres_lps()
    r = np.linalg.norm(p, axis=-1)
    hu = np.full(r.shape, 105.0)
    hu[r <= 14.0] = 75.0
    hu[r <= 9.0] = 40.0
    if organ_x_mm is not None:
        hu[(p[..., 0] > organ_x_mm) & (r > 14.0)] = 40.0
    hu = ndi.gaussian_filter(hu, 0.7 / g.spacing_mm[::-1])
    hu += np.random.default_rng(3).normal(0, 10, hu.shape)
    return g.with_array(hu.astype(np.int16)), r <= 14.0


def test_rim_lesion_one_click_follows_the_outer_edge():
    ct, truth = rim_lesion()
    m = seg.segment_tumor(ct, [1.0, -1.5, 1.5])
    d = dice(m.array, truth)
    ratio = m.array.sum() / truth.sum()
    print(f"rim lesion: Dice {d:.3f}, volume x{ratio:.2f}, {m.metadata.get('method')}, "
          f"steps {m.metadata.get('growth_steps')}")
    # the edge is taken where the value reaches 90 % of the liver level: on a blurred
    # synthetic step that lies ~1 mm outside (about +30 % volume on a 14 mm lesion)
    assert d >= 0.85
    assert ratio <= 1.4


def test_rim_lesion_against_same_density_organ_does_not_leak():
    """The organ touches the rim over a broad front: the growth stops or is cut, never
    past 1.5x the lesion, and a stop is said in the result."""
    ct, truth = rim_lesion(organ_x_mm=13.0)
    m = seg.segment_tumor(ct, [-1.0, 0.5, 0.0])
    ratio = m.array.sum() / truth.sum()
    leak = (m.array.astype(bool) & ~truth).sum() / truth.sum()
    print(f"rim lesion + organ: Dice {dice(m.array, truth):.3f}, volume x{ratio:.2f}, "
          f"outside {100 * leak:.0f} %, warning {m.metadata.get('warning')}")
    assert ratio <= 1.5
    assert leak <= 0.35  # the ~30 % overshoot of the clean rim lesion, nothing of the organ


@pytest.fixture(scope="module")
def ircadb_lesions(ircadb17):
    from irplan.io.dicom_load import load_ct
    from irplan.io.mask_import import import_ircadb_masks

    ct = load_ct(ircadb17 / "PATIENT_DICOM")
    masks = import_ircadb_masks(ircadb17 / "MASKS_DICOM.zip", ct,
                                only=["livertumor1", "livertumor2"])
    union = np.zeros(ct.array.shape, bool)
    for m in masks:
        union |= m.mask.array != 0
    lab, n = ndi.label(union, structure=np.ones((3, 3, 3)))
    return ct, masks, [lab == i for i in range(1, n + 1)]


def test_ircadb17_one_click_per_expert_tumour(ircadb_lesions):
    """Click at the deepest voxel of each expert tumour: Dice >= 0.80, never beyond 1.5x
    the expert volume (expert: 85.6 and 78.6 mL)."""
    ct, _, lesions = ircadb_lesions
    assert len(lesions) == 2
    for n, truth in enumerate(lesions, 1):
        m = seg.segment_tumor(ct, deepest(truth, ct))
        d = dice(m.array, truth)
        ml, t_ml = m.array.sum() * ct.voxel_volume_ml, truth.sum() * ct.voxel_volume_ml
        print(f"IRCADb17 tumour {n}: Dice {d:.3f}, {ml:.1f}/{t_ml:.1f} mL "
              f"({m.metadata['method']})")
        assert d >= 0.80
        assert ml <= 1.5 * t_ml


def test_scribbles_add_a_missed_part_fast():
    """One-click result cut by a wrong outside scribble is repaired by an inside scribble;
    one random-walker update on the lesion box takes <= 0.5 s of CPU (wall time depends on
    the machine's load; bench/bench_segment_lesions.py measures it)."""
    ct, truth = rim_lesion()
    first = seg.segment_tumor(ct, [1.0, -1.5, 1.5])
    m = seg.segment_tumor_scribbles(ct, [[1.0, -1.5, 1.5], [-8.0, 0.0, 0.0]],
                                    [[0.0, 25.0, 0.0]], initial=first)
    d0, d1 = dice(first.array, truth), dice(m.array, truth)
    print(f"scribbles: Dice {d0:.3f} -> {d1:.3f}, walker {m.metadata['walker_seconds']} s")
    assert d1 >= 0.85 and d1 >= d0
    assert m.metadata["walker_cpu_seconds"] <= 0.5
    with pytest.raises(InputError, match="inside"):
        seg.segment_tumor_scribbles(ct, [], [[0.0, 25.0, 0.0]])


def test_outside_stroke_alone_trims_a_too_large_prior():
    """A prior grown 4 mm into the liver and one outside stroke (no inside point: the
    prior's core is the inside): the result shrinks towards the lesion; a stroke is its
    points at most 1.5 mm apart."""
    ct, truth = rim_lesion()
    big = seg.grow_mm(ct.with_array(truth.astype(np.uint8)), 4.0)
    stroke = seg.stroke_points([[-12.0, 12.0, 0.0], [0.0, 17.5, 0.0], [12.0, 12.0, 0.0]])
    gaps = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    assert gaps.max() <= 1.5 + 1e-9 and len(stroke) == 19   # 26.4 mm
    m = seg.segment_tumor_scribbles(ct, [], stroke, initial=big)
    assert dice(m.array, truth) > dice(big.array, truth) + 0.05
    assert m.array.sum() < big.array.sum()
    assert m.metadata["inside_points"] == 0 and m.metadata["outside_points"] == len(stroke)


def test_cli_scribbles_tumour_and_background_seeds(tmp_path):
    """`irplan segment CT --tumor-seed ... --tumor-seed ... --background-seed ...`: one
    lesion from scribbles (exit 0, mL printed, mask written); background alone: exit 2."""
    import subprocess
    import sys

    from irplan.io.masks import read_mask, write_volume_file

    ct, truth = rim_lesion()
    path = write_volume_file(ct, tmp_path / "ct.nii.gz")
    run = [sys.executable, "-m", "irplan.app.cli", "segment", str(path), "--out",
           str(tmp_path / "out")]
    r = subprocess.run([*run, "--tumor-seed", "1,-1.5,1.5", "--tumor-seed=-8,0,0",
                        "--background-seed", "0,25,0", "--json"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    import json

    row = json.loads(r.stdout)[0]
    m = read_mask(tmp_path / "out" / "tumor.nii.gz")
    true_ml = truth.sum() * ct.voxel_volume_ml
    assert row["volume_ml"] == pytest.approx(true_ml, rel=0.35)
    assert dice(m.array, truth) >= 0.85
    r = subprocess.run([*run, "--background-seed", "0,25,0"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "--background-seed" in r.stderr


def test_ircadb17_import_keeps_the_two_tumours_apart(ircadb_lesions):
    """The two expert tumours become Tumour 1 and Tumour 2 (keys tumor, tumor_2) with their
    own volumes (SOURCE.md: 85.6 and 78.6 mL), not one 164 mL tumour."""
    from irplan.io.mask_import import merge_by_key

    _, masks, _ = ircadb_lesions
    merged = merge_by_key(masks, lesions_apart=True)
    tumours = {k: v for k, v in merged.items() if v.metadata.get("structure") == "tumor"}
    assert set(tumours) == {"tumor", "tumor_2"}
    ml = {v.metadata["name"]: v.metadata["volume_ml"] for v in tumours.values()}
    print(f"IRCADb17 import: {ml}")
    assert ml["Tumour 1"] == pytest.approx(85.6, abs=0.1)
    assert ml["Tumour 2"] == pytest.approx(78.6, abs=0.1)
    assert not (tumours["tumor"].array & tumours["tumor_2"].array).any()
