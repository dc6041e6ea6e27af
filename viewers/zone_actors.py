"""Draw a predicted ablation zone (:class:`irplan.planning.zone.ZoneResult`) in the views.

- 3-D: the zone surface, translucent orange (structure style of "ablation_zone").
- MPR: the zone contour on every slice (the views' outline mode cuts the surface), and for
  IRE the field magnitude |E| as a colour map on top of the CT: transparent below the
  reversible threshold, blue-cyan between reversible and lethal, orange to dark red above
  the lethal threshold (the zone), with a colour bar in V/cm on the axial view.

Everything goes through the public :class:`irplan.viewers.view_set.ViewSet` API
(``set_structure``/``set_surface``/``set_structure_style`` and ``add_overlay_actor``).
The zone surface is computed with :func:`irplan.viewers.surfaces.mask_to_polydata`,
preferably off the GUI thread (``zone_surface``), then handed to :meth:`ZoneDisplay.show`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from vtkmodules.vtkCommonCore import vtkLookupTable
from vtkmodules.vtkCommonDataModel import vtkPolyData
from vtkmodules.vtkFiltersCore import vtkFlyingEdges3D
from vtkmodules.vtkRenderingAnnotation import vtkScalarBarActor
from vtkmodules.vtkRenderingCore import vtkImageSlice
from vtkmodules.vtkRenderingImage import vtkImageResliceMapper

from irplan.planning.ire_field import E_REVERSIBLE_V_PER_CM
from irplan.planning.structures import structure_types
from irplan.planning.volume import Volume
from irplan.planning.zone import ZoneResult
from irplan.viewers.surfaces import mask_to_polydata
from irplan.viewers.view_set import MPR_NAMES, ViewSet
from irplan.viewers.vtk_convert import volume_to_vtk

ZONE_KEY = "predicted_zone"
FIELD_MAX_V_PER_CM = 2000.0       # top of the colour scale
FIELD_OPACITY = 0.7


def zone_surface(result: ZoneResult, cancel: Callable[[], bool] | None = None) -> vtkPolyData:
    """Surface mesh of the zone (LPS mm). IRE: the |E| = threshold iso-surface of the field
    (sub-voxel, no staircase); thermal: the smoothed surface of the zone mask."""
    fld, thr = result.field_v_per_cm, result.threshold_v_per_cm
    if fld is None or thr is None or not np.allclose(fld.direction, np.eye(3)):
        return mask_to_polydata(result.zone, smoothing_iterations=15, target_reduction=0.3,
                                cancel=cancel)
    arr = np.ascontiguousarray(fld.array, dtype=np.float32)
    # pad with zeros so the surface closes where the zone touches the grid border
    padded = np.pad(arr, 1)
    vol = Volume(padded, fld.index_to_lps([-1.0, -1.0, -1.0]), fld.spacing_mm, fld.direction)
    fe = vtkFlyingEdges3D()
    fe.SetInputData(volume_to_vtk(vol))
    fe.SetValue(0, float(thr))
    fe.ComputeNormalsOn()
    fe.Update()
    if cancel is not None and cancel():
        from irplan.planning.errors import CancelledError

        raise CancelledError("zone surface cancelled")
    out = vtkPolyData()
    out.DeepCopy(fe.GetOutput())
    return out


def field_lookup_table(threshold_v_per_cm: float, e_rev_v_per_cm: float = E_REVERSIBLE_V_PER_CM,
                       vmax: float = FIELD_MAX_V_PER_CM, n: int = 256) -> vtkLookupTable:
    """|E| colours over [0, vmax] V/cm: clear below E_rev, blue->cyan up to the lethal
    threshold, orange->dark red above it."""
    lut = vtkLookupTable()
    lut.SetNumberOfTableValues(n)
    lut.SetTableRange(0.0, vmax)
    for i in range(n):
        e = (i + 0.5) / n * vmax
        if e < e_rev_v_per_cm:
            rgba = (0.0, 0.0, 0.0, 0.0)
        elif e < threshold_v_per_cm:
            t = (e - e_rev_v_per_cm) / max(threshold_v_per_cm - e_rev_v_per_cm, 1e-6)
            rgba = (0.1, 0.35 + 0.6 * t, 1.0, 0.55)
        else:   # orange -> dark red: the tumour's yellow outline stays readable on top
            t = min((e - threshold_v_per_cm) / max(vmax - threshold_v_per_cm, 1e-6), 1.0)
            rgba = (1.0 - 0.35 * t, 0.5 * (1 - t), 0.05, 0.8)
        lut.SetTableValue(i, *rgba)
    lut.SetBelowRangeColor(0, 0, 0, 0)
    lut.UseBelowRangeColorOn()
    lut.SetAboveRangeColor(0.65, 0.0, 0.05, 0.8)
    lut.UseAboveRangeColorOn()
    lut.Build()
    return lut


class ZoneDisplay:
    """The predicted zone in a :class:`ViewSet`. ``show(result, surface)`` replaces it,
    ``clear()`` removes it; ``field_visible`` toggles the |E| colour map."""

    def __init__(self, views: ViewSet) -> None:
        self.views = views
        self.result: ZoneResult | None = None
        self._field_slices: dict[str, vtkImageSlice] = {}
        self._bar: vtkScalarBarActor | None = None
        self.field_visible = True
        self.zone_visible = True
        zt = structure_types().get("ablation_zone")
        self.color = tuple(zt.color) if zt else (1.0, 0.45, 0.0)

    # ------------------------------------------------------------------ public
    def show(self, result: ZoneResult, surface: vtkPolyData | None = None) -> None:
        """Draw ``result`` (surface: its mesh, or None to draw the voxel fill only)."""
        self.result = result
        self.views.set_structure(ZONE_KEY, result.zone)
        if surface is not None:
            self.views.set_surface(ZONE_KEY, surface)
        self.views.set_structure_style(ZONE_KEY, color=self.color, opacity_2d=0.25,
                                       opacity_3d=0.35, visible=self.zone_visible)
        self._set_field(result.field_v_per_cm, result.threshold_v_per_cm)
        self.views.render()

    def set_surface(self, surface: vtkPolyData) -> None:
        """The mesh of the zone shown last (arrives after ``show`` from a worker)."""
        if self.result is not None:
            self.views.set_surface(ZONE_KEY, surface)
            self.views.set_structure_style(ZONE_KEY, color=self.color, opacity_2d=0.25,
                                           opacity_3d=0.35, visible=self.zone_visible)
            self.views.render()

    def clear(self) -> None:
        self.result = None
        self.views.set_structure(ZONE_KEY, None)
        self._set_field(None, None)
        self.views.render()

    def set_field_visible(self, on: bool) -> None:
        self.field_visible = bool(on)
        for sl in self._field_slices.values():
            sl.SetVisibility(self.field_visible)
        if self._bar is not None:
            self._bar.SetVisibility(self.field_visible)
        self.views.render()

    def set_zone_visible(self, on: bool) -> None:
        self.zone_visible = bool(on)
        if self.result is not None:
            self.views.set_structure_style(ZONE_KEY, visible=self.zone_visible)
            self.views.render()

    @property
    def field_view_names(self) -> list[str]:
        return list(self._field_slices)

    # ------------------------------------------------------------------ internals
    def _set_field(self, field: Volume | None, threshold: float | None) -> None:
        for name, sl in self._field_slices.items():
            self.views.remove_overlay_actor(sl, name)
        self._field_slices.clear()
        if self._bar is not None:
            self.views.remove_overlay_actor(self._bar, "axial")
            self._bar = None
        if field is None or threshold is None:
            return
        img = volume_to_vtk(field.with_array(np.ascontiguousarray(field.array,
                                                                  dtype=np.float32)))
        lut = field_lookup_table(threshold)
        for name in MPR_NAMES:
            m = vtkImageResliceMapper()
            m.SetInputData(img)
            m.SliceFacesCameraOn()
            m.SliceAtFocalPointOn()
            m.ResampleToScreenPixelsOn()
            sl = vtkImageSlice()
            sl.SetMapper(m)
            prop = sl.GetProperty()
            prop.SetLookupTable(lut)
            prop.UseLookupTableScalarRangeOn()
            prop.SetInterpolationTypeToLinear()
            prop.SetOpacity(FIELD_OPACITY)
            sl.PickableOff()
            sl.SetVisibility(self.field_visible)
            self.views.add_overlay_actor(sl, name, on_top=True)
            self._field_slices[name] = sl
        bar = vtkScalarBarActor()
        bar.SetLookupTable(lut)
        bar.SetTitle("|E| V/cm")
        bar.SetNumberOfLabels(5)
        bar.SetLabelFormat("%.0f")
        bar.SetMaximumWidthInPixels(60)
        bar.SetMaximumHeightInPixels(220)
        bar.GetPositionCoordinate().SetCoordinateSystemToNormalizedViewport()
        bar.GetPositionCoordinate().SetValue(0.88, 0.30)
        bar.SetWidth(0.1)
        bar.SetHeight(0.45)
        for tp in (bar.GetTitleTextProperty(), bar.GetLabelTextProperty()):
            tp.SetColor(0.9, 0.9, 0.9)
            tp.SetFontSize(12)
            tp.ShadowOff()
            tp.ItalicOff()
        bar.SetVisibility(self.field_visible)
        self.views.add_overlay_actor(bar, "axial", on_top=True)
        self._bar = bar
