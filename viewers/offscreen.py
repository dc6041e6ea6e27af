"""Render a VTK renderer off screen and grab its pixels (report and evaluation pictures)."""

from __future__ import annotations

from typing import Any


def grab_offscreen(renderer: Any, size: tuple[int, int], multisamples: int = 4) -> Any:
    """Render ``renderer`` in an off-screen window of ``size`` (w, h) pixels; return a
    vtkImageData copy of the RGB frame (VTK row order: bottom row first)."""
    from vtkmodules.vtkCommonDataModel import vtkImageData
    from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkWindowToImageFilter

    rw = vtkRenderWindow()
    rw.SetOffScreenRendering(1)
    rw.SetMultiSamples(multisamples)
    rw.AddRenderer(renderer)
    rw.SetSize(int(size[0]), int(size[1]))
    rw.Render()
    grab = vtkWindowToImageFilter()
    grab.SetInput(rw)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    image = vtkImageData()
    image.DeepCopy(grab.GetOutput())
    rw.Finalize()
    return image
