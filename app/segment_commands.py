"""Undo commands of the Segment step and the outlines its tools draw (LPS mm).

``ReplaceStructure`` sets a structure to a new mask (or removes it) and puts the old one
back on undo; ``ScribbleCommand`` is one inside/outside stroke (the lesion re-grown from
all strokes, issue 17); ``BrushCommand`` is one brush/eraser stroke, painted live and
undone voxel by voxel. The circle helpers give the brush and drag outlines in a slice plane.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtGui import QUndoCommand

from irplan.planning.case import Case
from irplan.planning.mask_ops import MaskEdit
from irplan.planning.volume import Volume


class ReplaceStructure(QUndoCommand):
    """Set a structure to ``after`` (None = remove); undo puts ``before`` back."""

    def __init__(self, case: Case, key: str, before: Volume | None, after: Volume | None,
                 text: str) -> None:
        super().__init__(text)
        self.case, self.key, self.before, self.after = case, key, before, after

    def _apply(self, vol: Volume | None) -> None:
        if vol is None:
            self.case.remove_structure(self.key)
        else:
            self.case.set_structure(self.key, vol)

    def redo(self) -> None:
        self._apply(self.after)

    def undo(self) -> None:
        self._apply(self.before)


@dataclass(frozen=True, eq=False)
class Scribbles:
    """The inside/outside strokes (each an (N, 3) LPS mm array) painted on lesion ``key``
    and the mask they refine (``prior``: the lesion before the first stroke, or None)."""

    key: str
    prior: Volume | None
    inside: tuple[np.ndarray, ...] = ()
    outside: tuple[np.ndarray, ...] = ()

    def points(self, inside: bool) -> np.ndarray:
        strokes = self.inside if inside else self.outside
        return np.vstack(strokes) if strokes else np.zeros((0, 3))


class ScribbleCommand(ReplaceStructure):
    """One inside/outside stroke: the lesion's new mask and the strokes so far; undo puts
    back the mask and the strokes before it (``restore`` sets the logic's strokes)."""

    def __init__(self, case: Case, key: str, before: Volume | None, after: Volume,
                 text: str, strokes_before: Scribbles | None, strokes_after: Scribbles,
                 restore: Callable[[Scribbles | None, Volume | None], None]) -> None:
        super().__init__(case, key, before, after, text)
        self.strokes_before, self.strokes_after, self.restore = (strokes_before,
                                                                 strokes_after, restore)

    def redo(self) -> None:
        super().redo()
        self.restore(self.strokes_after, self.after)

    def undo(self) -> None:
        super().undo()
        self.restore(self.strokes_before, self.before)


class BrushCommand(QUndoCommand):
    """One brush/eraser stroke (already applied when pushed); undo restores the voxels."""

    def __init__(self, case: Case, key: str, mask: Volume, edits: list[MaskEdit],
                 created: bool, text: str) -> None:
        super().__init__(text)
        self.case, self.key, self.mask, self.edits, self.created = case, key, mask, edits, created
        self._first = True

    def redo(self) -> None:
        if self._first:  # painted live during the drag
            self._first = False
            return
        for e in self.edits:
            e.redo(self.mask)
        self.case.set_structure(self.key, self.mask)

    def undo(self) -> None:
        for e in reversed(self.edits):
            e.undo(self.mask)
        if self.created:
            self.case.remove_structure(self.key)
        else:
            self.case.set_structure(self.key, self.mask)


def circle_points(centre: np.ndarray, normal: np.ndarray, radius_mm: float,
                  n: int = 64) -> np.ndarray:
    """``n`` points (LPS mm) of the circle of ``radius_mm`` about ``centre`` in the plane
    with ``normal``."""
    nrm = np.asarray(normal, float) / np.linalg.norm(normal)
    a = np.cross(nrm, [1.0, 0, 0] if abs(nrm[0]) < 0.9 else [0, 1.0, 0])
    a /= np.linalg.norm(a)
    b = np.cross(nrm, a)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return centre + radius_mm * (np.outer(np.cos(t), a) + np.outer(np.sin(t), b))


def circle_poly(centre: np.ndarray, normal: np.ndarray, radius_mm: float, n: int = 64):
    """A closed circle (LPS mm) in the plane with ``normal``: vtkPolyData lines."""
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

    pts = vtkPoints()
    lines = vtkCellArray()
    for x in circle_points(centre, normal, radius_mm, n):
        pts.InsertNextPoint(*x)
    lines.InsertNextCell(n + 1)
    for i in [*range(n), 0]:
        lines.InsertCellPoint(i)
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetLines(lines)
    return poly


def points_poly(points: list[np.ndarray]):
    """Vertices (LPS mm) as vtkPolyData (the liver seed markers)."""
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

    pts, verts = vtkPoints(), vtkCellArray()
    for s in points:
        verts.InsertNextCell(1)
        verts.InsertCellPoint(pts.InsertNextPoint(*s))
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetVerts(verts)
    return poly


def polyline_poly(strokes: list[np.ndarray]):
    """Strokes ((N, 3) LPS mm each) as vtkPolyData lines (a single point: a vertex)."""
    from vtkmodules.vtkCommonCore import vtkPoints
    from vtkmodules.vtkCommonDataModel import vtkCellArray, vtkPolyData

    pts, lines, verts = vtkPoints(), vtkCellArray(), vtkCellArray()
    for st in strokes:
        ids = [pts.InsertNextPoint(*p) for p in np.atleast_2d(st)]
        cells = lines if len(ids) > 1 else verts
        cells.InsertNextCell(len(ids))
        for i in ids:
            cells.InsertCellPoint(i)
    poly = vtkPolyData()
    poly.SetPoints(pts)
    poly.SetLines(lines)
    poly.SetVerts(verts)
    return poly
