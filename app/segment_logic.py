"""The Segment step without widgets: tools, proposals, refine, import, brush strokes, undo.

All points are LPS mm. A tool result is a *proposal* shown at once as its structure:
:meth:`SegmentLogic.accept` keeps it, :meth:`~SegmentLogic.reject` puts back what was
there, :meth:`~SegmentLogic.refine` (grow / shrink by mm, smooth, fill holes, keep
largest part) edits it. Every change is one step of :attr:`SegmentLogic.undo_stack`.
Segmentations run in ``tasks`` (a TaskRunner), or inline when ``tasks`` is None.

Registered as ``ctx.services.segment``; the mouse part is
:mod:`irplan.app.segment_tool`, the widget :mod:`irplan.app.segment_panel`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from irplan.app.segment_commands import (
    BrushCommand,
    ReplaceStructure,
    ScribbleCommand,
    Scribbles,
)
from irplan.planning import segmentation as seg
from irplan.planning.case import Case
from irplan.planning.errors import IrplanError
from irplan.planning.mask_ops import brush_stroke, max_diameter_mm, volume_ml
from irplan.planning.structures import (
    is_lesion_key,
    lesion_keys,
    next_lesion_key,
    structure_types,
)
from irplan.planning.volume import Volume

TOOLS: tuple[tuple[str, str, str], ...] = (
    ("navigate", "Navigate", "Clicks move the crosshair"),
    ("tumor", "Tumour", "Click inside a hypodense lesion; drag to give its radius"),
    ("liver", "Liver", "Click in the liver parenchyma; more clicks add seeds"),
    ("vessel", "Vessel", "Click inside an enhanced vessel"),
    ("brush", "Brush", "Paint the target structure in the shown slice"),
    ("erase", "Eraser", "Erase the target structure in the shown slice"),
    ("inside", "Inside stroke", "Paint a stroke inside the lesion: the tumour is grown "
     "again from all strokes (random walker)"),
    ("outside", "Outside stroke", "Paint a stroke outside the lesion (liver, vessel): "
     "the tumour is grown again from all strokes and stays off it"),
)
SCRIBBLE_TOOLS = ("inside", "outside")
VESSEL_KEYS = ("portal_vein", "hepatic_vein", "artery", "bile_duct", "vessels")
NEW_LESION = "new_lesion"   # target entry: the next free lesion key (tumor_2, ...; issue 17)
EDIT_KEYS = ("tumor", NEW_LESION, "liver", "portal_vein", "hepatic_vein", "artery", "bile_duct",
             "bone", "lung", "ablation_zone")
REFINE_LABELS = {"grow": "grow {step:g} mm", "shrink": "shrink {step:g} mm",
                 "smooth": "smooth {step:g} mm", "fill": "fill holes",
                 "largest": "keep largest part"}


def structure_name(key: str) -> str:
    """The display name of a structure key (the key itself when it is not a known type)."""
    if key == NEW_LESION:
        return "New lesion"
    st = structure_types().get(key)
    return st.name if st else key


class SegmentLogic(QObject):
    """What the Segment step does to ``case.structures``; the settings the widget shows
    are plain attributes (``target_key``, ``radius_mm``, ``step_mm``, ``use_vesselness``,
    ``vessel_lower_hu``: None = auto, ``brush_hu_window``: (low, high) HU the brush and
    eraser are limited to, None = all voxels)."""

    proposal_ready = Signal(str)   # structure key of a new proposal
    failed = Signal(str)           # one-line message
    message = Signal(str, bool)    # one line for the user, is it an error
    busy_changed = Signal(bool)
    state_changed = Signal()       # pending proposal, seeds, busy or target changed
    seeds_changed = Signal()
    scribbles_changed = Signal()   # strokes of the scribble tools (drawn by the tool)

    def __init__(self, case: Case, tasks: Any = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.case, self.tasks = case, tasks
        self.undo_stack = QUndoStack(self)
        self.tool = "navigate"
        self.target_key = EDIT_KEYS[0]
        self.radius_mm = 5.0
        self.step_mm = 1.0
        self.use_vesselness = False
        # tumour clicks start another lesion (tumor_2, tumor_3, ...) instead of adding to
        # the target lesion (issue 17); off again once the new lesion is proposed
        self.new_lesion = False
        self.vessel_lower_hu: float | None = None
        self.pending: str | None = None          # key of an unaccepted proposal
        self._pending_cmd: QUndoCommand | None = None
        self.liver_seeds: list[np.ndarray] = []
        self.stroke: dict[str, Any] | None = None
        self.brush_hu_window: tuple[float, float] | None = None
        # inside/outside strokes on one lesion (issue 17): the strokes so far and the mask
        # they gave (a new session starts when the lesion changed in another way)
        self.scribbles: Scribbles | None = None
        self._scribbled: Volume | None = None
        self.scribble: dict[str, Any] | None = None   # the stroke being painted
        self.scribble_seconds: float | None = None    # last update, wall
        self.busy = False
        case.ct_changed.connect(self.reset)

    def reset(self) -> None:
        """Another CT: no history, no proposal, no seeds."""
        self.undo_stack.clear()
        self.pending = None
        self._pending_cmd = None
        self.liver_seeds.clear()
        self.scribbles, self._scribbled, self.scribble = None, None, None
        self.seeds_changed.emit()
        self.scribbles_changed.emit()
        self.state_changed.emit()

    def set_target(self, key: str) -> None:
        """The structure tools act on; ``NEW_LESION``: a lesion the case does not have yet
        (tumor_2, tumor_3, ...), which tumour clicks, strokes and the brush then make."""
        if key == NEW_LESION:
            key = next_lesion_key(self.case.structures)
        self.target_key = key
        self.state_changed.emit()

    def _say(self, text: str, error: bool = False) -> None:
        self.message.emit(text, error)

    def _fail(self, msg: str) -> None:
        self._say(msg, error=True)
        self.failed.emit(msg)

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.busy_changed.emit(busy)
        self.state_changed.emit()

    # ------------------------------------------------------------------ running
    def _run(self, name: str, fn: Callable[[], Any], on_done: Callable[[Any], None]) -> None:
        """Run a segmentation off the GUI thread (TaskRunner) or inline without one."""
        if self.case.ct is None:
            self._fail("Load a CT first")
            return
        self._set_busy(True)
        self._say(f"{name}…")
        if self.tasks is None:
            try:
                res = fn()
            except IrplanError as exc:
                self._set_busy(False)
                self._fail(str(exc))
                return
            self._set_busy(False)
            on_done(res)
            return

        def job(progress, cancel):  # noqa: ANN001, ANN202
            progress(0.0, name)
            return fn()

        def done(res: Any) -> None:
            self._set_busy(False)
            on_done(res)

        def err(msg: str) -> None:
            self._set_busy(False)
            self._fail(msg)

        self.tasks.start(name, job, done, err)

    def _propose(self, key: str, mask: Volume, text: str, union: bool = False) -> None:
        """Show a tool result as structure ``key`` (pending until Accept/Reject)."""
        if self.pending is not None:
            self.accept()
        before = self.case.structures.get(key)
        after = mask
        if union and before is not None:
            after = before.with_array(((before.array != 0) | (mask.array != 0)).astype(np.uint8))
            after.metadata.update(mask.metadata)
        cmd = ReplaceStructure(self.case, key, before, after, text)
        self.undo_stack.push(cmd)
        self.pending = key
        self._pending_cmd = cmd
        self.target_key = key
        window = mask.metadata.get("hu_window")
        extra = f" (HU window {window[0]}..{window[1]})" if window else ""
        self._say(f"{text}: {volume_ml(mask):.1f} mL, largest diameter "
                  f"{max_diameter_mm(mask):.1f} mm{extra}. Accept, refine or reject.")
        self.state_changed.emit()
        self.proposal_ready.emit(key)

    def accept(self) -> None:
        if self.pending is not None:
            self._say(f"{structure_name(self.pending)} accepted.")
        self.pending = None
        self._pending_cmd = None
        self.state_changed.emit()

    def reject(self) -> None:
        """Undo the pending proposal (and any refinement made on it)."""
        if self.pending is None or self._pending_cmd is None:
            return
        key = self.pending
        # undo back to (and including) the proposal command
        while self.undo_stack.canUndo():
            cmd = self.undo_stack.command(self.undo_stack.index() - 1)
            self.undo_stack.undo()
            if cmd is self._pending_cmd:
                break
        self.pending = None
        self._pending_cmd = None
        self._say(f"{structure_name(key)} proposal rejected.")
        self.state_changed.emit()

    # ------------------------------------------------------------------ tools
    def tumour_key(self) -> str:
        """The lesion a tumour click adds to: a new one (``new_lesion``: the first free key
        of tumor, tumor_2, ...), the target structure when it is a lesion, else "tumor"."""
        if self.new_lesion:
            return next_lesion_key(self.case.structures)
        return self.target_key if is_lesion_key(self.target_key) else "tumor"

    def run_tumor(self, seed_lps_mm: np.ndarray, radius_mm: float | None = None) -> None:
        ct = self.case.ct
        key = self.tumour_key()
        name = structure_name(key)

        def fn() -> Volume:
            return seg.segment_tumor(ct, seed_lps_mm, radius_mm=radius_mm)

        def done(m: Volume) -> None:
            self.new_lesion = False
            self._propose(key, m, name, union=True)

        self._run(name, fn, done)

    def add_liver_seed(self, seed_lps_mm: np.ndarray) -> None:
        self.liver_seeds.append(np.asarray(seed_lps_mm, float))
        seeds = [s.copy() for s in self.liver_seeds]
        ct = self.case.ct
        lesions = [self.case.structures[k] for k in lesion_keys(self.case.structures)]
        tumour = lesions[0].with_array(np.any([m.array != 0 for m in lesions], axis=0)
                                       .astype(np.uint8)) if lesions else None  # in the liver
        self.seeds_changed.emit()

        def fn() -> Volume:
            return seg.segment_liver(ct, seeds, include=tumour)

        def done(m: Volume) -> None:
            if self.pending == "liver":  # a new seed refines the same proposal
                self.reject()
            self._propose("liver", m, f"Liver ({len(seeds)} seed{'s' if len(seeds) > 1 else ''})")

        self._run("Liver", fn, done)

    def clear_liver_seeds(self) -> None:
        self.liver_seeds.clear()
        self.seeds_changed.emit()
        self.state_changed.emit()

    def run_vessel(self, seed_lps_mm: np.ndarray) -> None:
        ct = self.case.ct
        liver = self.case.structures.get("liver")
        key = self.target_key if self.target_key in VESSEL_KEYS else "portal_vein"
        use_vn = self.use_vesselness and liver is not None
        lower = self.vessel_lower_hu

        def fn() -> Volume:
            return seg.segment_vessels(ct, seed_lps_mm, liver=liver, key=key,
                                       use_vesselness=use_vn, lower_hu=lower)

        name = structure_name(key)
        self._run(name, fn, lambda m: self._propose(key, m, name, union=True))

    def run_auto(self, which: str) -> None:
        ct = self.case.ct
        fn = {"bone": lambda: seg.segment_bone(ct), "lung": lambda: seg.segment_lung(ct)}[which]
        self._run(structure_name(which), fn,
                  lambda m: self._propose(which, m, structure_name(which)))

    def refine(self, op: str) -> None:
        """Refine the pending proposal (or the target structure): grow, shrink, smooth,
        fill, largest. Grow/shrink/smooth use ``step_mm``."""
        key = self.pending or self.target_key
        mask = self.case.structures.get(key)
        if mask is None:
            self._fail(f"{structure_name(key)}: nothing to refine")
            return
        step = float(self.step_mm)
        fns = {"grow": lambda: seg.grow_mm(mask, step), "shrink": lambda: seg.shrink_mm(mask, step),
               "smooth": lambda: seg.smooth_mm(mask, step), "fill": lambda: seg.fill_holes(mask),
               "largest": lambda: seg.keep_largest_component(mask)}
        label = REFINE_LABELS[op].format(step=step)
        new = fns[op]()
        self.undo_stack.push(ReplaceStructure(self.case, key, mask, new,
                                              f"{structure_name(key)}: {label}"))
        self._say(f"{structure_name(key)}: {label} -> {volume_ml(new):.1f} mL")
        self.state_changed.emit()

    # ------------------------------------------------------------------ import
    def import_path(self, path: str | Path) -> None:
        """Import every structure of a file/folder onto the CT (one undo step)."""
        from irplan.io.mask_import import import_structures, import_summary

        ct = self.case.ct
        if ct is None:
            self._fail("Load a CT first")
            return
        if self.pending is not None:
            self.accept()

        def fn() -> tuple[dict[str, Volume], list[str]]:
            return import_structures(path, ct)   # lesions apart: tumor, tumor_2, ...

        def done(res: tuple[dict[str, Volume], list[str]]) -> None:
            masks, warn = res
            self.undo_stack.beginMacro(f"Import {Path(path).name}")
            for key, m in masks.items():
                self.undo_stack.push(ReplaceStructure(self.case, key,
                                                      self.case.structures.get(key), m,
                                                      f"import {key}"))
            if lesion_keys(masks):   # the imported lesions replace the case's lesions
                for key in lesion_keys(self.case.structures):
                    if key not in masks:
                        self.undo_stack.push(ReplaceStructure(
                            self.case, key, self.case.structures[key], None, f"import {key}"))
            self.undo_stack.endMacro()
            names = import_summary(masks)
            self._say(f"Imported {names}." + (f" Warning: {'; '.join(warn)}" if warn else ""))
            self.state_changed.emit()

        self._run(f"Import {Path(path).name}", fn, done)

    # ------------------------------------------------------------------ brush strokes
    def begin_stroke(self, p_lps_mm: np.ndarray, normal: np.ndarray, erase: bool) -> bool:
        """Start painting (``erase``: erasing) the target structure in the plane with
        ``normal`` through ``p_lps_mm``; False when there is nothing to erase."""
        key = self.target_key
        if self.pending is not None and self.pending != key:
            self.accept()
        mask = self.case.structures.get(key)
        created = mask is None
        if created:
            if erase:
                self.stroke = None
                self._fail(f"{structure_name(key)}: nothing to erase")
                return False
            ct = self.case.ct
            mask = ct.with_array(np.zeros(ct.array.shape, np.uint8))
            mask.metadata = {"structure": key, "method": "brush"}
            self.case.set_structure(key, mask)
        self.stroke = {"key": key, "mask": mask, "edits": [], "last": p_lps_mm, "erase": erase,
                       "normal": np.asarray(normal, float), "created": created}
        self._paint(p_lps_mm, p_lps_mm)
        return True

    def _paint(self, a: np.ndarray, b: np.ndarray) -> bool:
        st = self.stroke
        assert st is not None
        win = self.brush_hu_window
        limit = None if win is None or self.case.ct is None else _HuWindow(
            self.case.ct.array, float(min(win)), float(max(win)))
        edit = brush_stroke(st["mask"], np.stack([a, b]), float(self.radius_mm),
                            erase=st["erase"], plane_normal_lps=st["normal"], limit=limit)
        st["last"] = b
        if edit.changed_voxels:
            st["edits"].append(edit)
            return True
        return False

    def continue_stroke(self, p_lps_mm: np.ndarray) -> tuple[np.ndarray, bool]:
        """Paint to ``p_lps_mm`` projected into the stroke's plane; returns that point and
        whether voxels changed (the key's slices then need a redraw)."""
        st = self.stroke
        assert st is not None
        n = st["normal"]
        p = p_lps_mm - n * float(np.dot(p_lps_mm - st["last"], n))
        return p, self._paint(st["last"], p)

    def end_stroke(self) -> None:
        """Finish the stroke: one undo step (nothing when no voxel changed)."""
        st, self.stroke = self.stroke, None
        if st is None:
            return
        if not st["edits"]:
            if st["created"]:
                self.case.remove_structure(st["key"])
            return
        what = "Erase" if st["erase"] else "Paint"
        name = structure_name(st["key"])
        if self.scribbles is not None and self.scribbles.key == st["key"]:
            self._set_scribbles(None, None)   # the next stroke refines the painted mask
        self.undo_stack.push(BrushCommand(self.case, st["key"], st["mask"], st["edits"],
                                          st["created"], f"{what} {name}"))
        self.case.set_structure(st["key"], st["mask"])  # volume, surface, lists
        self._say(f"{what}: {name} {volume_ml(st['mask']):.1f} mL")
        self.state_changed.emit()

    # ------------------------------------------------------------------ scribbles
    def scribble_key(self) -> str:
        """The lesion inside/outside strokes refine: that of the current strokes while the
        target is still it, else :meth:`tumour_key`."""
        sc = self.scribbles
        if sc is not None and not self.new_lesion and sc.key == self.target_key:
            return sc.key
        return self.tumour_key()

    def begin_scribble(self, p_lps_mm: np.ndarray, normal: np.ndarray, inside: bool) -> bool:
        """Start an inside (``inside``) or outside stroke in the plane with ``normal``;
        False (and a message) when an outside stroke has no lesion to act on."""
        key = self.scribble_key()
        if self.pending is not None and self.pending != key:
            self.accept()
        if not inside and self._session(key) is None and key not in self.case.structures:
            self._fail(f"{structure_name(key)}: paint an inside stroke first")
            return False
        self.scribble = {"key": key, "inside": inside, "normal": np.asarray(normal, float),
                         "points": [np.asarray(p_lps_mm, float)]}
        self.scribbles_changed.emit()
        return True

    def continue_scribble(self, p_lps_mm: np.ndarray) -> np.ndarray:
        """Extend the stroke to ``p_lps_mm`` projected into its plane; returns that point."""
        st = self.scribble
        assert st is not None
        n = st["normal"]
        p = np.asarray(p_lps_mm, float)
        p = p - n * float(np.dot(p - st["points"][0], n))
        st["points"].append(p)
        self.scribbles_changed.emit()
        return p

    def end_scribble(self) -> None:
        """Finish the stroke: the lesion is grown again from every stroke so far (one undo
        step; inline, or a job when there is a task runner)."""
        st, self.scribble = self.scribble, None
        if st is None:
            return
        key = st["key"]
        before = self.case.structures.get(key)
        old = self._session(key)
        base = old if old is not None else Scribbles(key, before)
        pts = seg.stroke_points(np.asarray(st["points"]))
        new = Scribbles(key, base.prior, base.inside + ((pts,) if st["inside"] else ()),
                        base.outside + (() if st["inside"] else (pts,)))
        ct = self.case.ct
        ins, outs, prior = new.points(True), new.points(False), new.prior
        what = "Inside stroke" if st["inside"] else "Outside stroke"
        name = structure_name(key)

        def fn() -> Volume:
            import time

            t0 = time.perf_counter()
            m = seg.segment_tumor_scribbles(ct, ins, outs, initial=prior)
            m.metadata["update_seconds"] = round(time.perf_counter() - t0, 3)
            return m

        def done(m: Volume) -> None:
            self.new_lesion = False
            self.scribble_seconds = float(m.metadata["update_seconds"])
            self.undo_stack.push(ScribbleCommand(self.case, key, before, m, f"{what}: {name}",
                                                 old, new, self._set_scribbles))
            if self.pending is None and before is None:   # a new lesion: a proposal
                self.pending, self._pending_cmd = key, self.undo_stack.command(
                    self.undo_stack.index() - 1)
            self.target_key = key
            warn = m.metadata.get("warning")
            self._say(f"{what}: {name} {volume_ml(m):.1f} mL "
                      f"({len(new.inside)} inside, {len(new.outside)} outside stroke"
                      f"{'s' if len(new.inside) + len(new.outside) > 1 else ''}; "
                      f"{self.scribble_seconds:.2f} s)" + (f". Note: {warn}" if warn else ""))
            self.state_changed.emit()
            if self.pending == key:
                self.proposal_ready.emit(key)

        self._run(f"{name}: {what.lower()}", fn, done)
        if not self.busy:   # refused (message sent) or done inline
            self.scribbles_changed.emit()

    def clear_scribbles(self) -> None:
        """Forget the strokes (the lesion stays): the next stroke refines it as it is."""
        self._set_scribbles(None, None)

    def _session(self, key: str) -> Scribbles | None:
        """The strokes on lesion ``key`` when it is still the mask they gave."""
        sc = self.scribbles
        if sc is None or sc.key != key or self.case.structures.get(key) is not self._scribbled:
            return None
        return sc

    def _set_scribbles(self, strokes: Scribbles | None, mask: Volume | None) -> None:
        self.scribbles, self._scribbled = strokes, mask
        self.scribbles_changed.emit()


class _HuWindow:
    """``limit`` for :func:`brush_stroke`: True where the CT is within [low, high] HU,
    computed only on the block the brush touches."""

    def __init__(self, ct_hu: np.ndarray, low: float, high: float) -> None:
        self.ct_hu, self.low, self.high = ct_hu, low, high

    def __getitem__(self, sl: tuple[slice, ...]) -> np.ndarray:
        block = self.ct_hu[sl]
        return (block >= self.low) & (block <= self.high)
