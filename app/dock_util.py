"""One way the panels put themselves in a dock of the main window (through
``ctx.add_dock``, which also files the dock under its name in ``ctx.docks``)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QWidget

from irplan.app.context import AppContext


def add_panel_dock(ctx: AppContext, name: str, title: str, panel: QWidget,
                   area: Qt.DockWidgetArea, closable: bool = True) -> QDockWidget:
    """Wrap ``panel`` in a movable, floatable (``closable``: closable) dock called
    ``title`` and add it as ``ctx.docks[name]`` in ``area``."""
    dock = QDockWidget(title, ctx.parent)
    dock.setObjectName(f"{name}Dock")
    dock.setWidget(panel)
    features = (QDockWidget.DockWidgetFeature.DockWidgetMovable
                | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    if closable:
        features |= QDockWidget.DockWidgetFeature.DockWidgetClosable
    dock.setFeatures(features)
    ctx.add_dock(name, dock, area)
    return dock


def installed_panel(ctx: AppContext, name: str, kind: type) -> QWidget | None:
    """The panel of type ``kind`` already in dock ``name`` (installs are idempotent)."""
    dock = ctx.docks.get(name)
    widget = dock.widget() if dock is not None else None
    return widget if isinstance(widget, kind) else None


def resize_dock(dock: QDockWidget, height_px: int) -> None:
    """Give a bottom/top dock ``height_px`` in its main window."""
    main = dock.parentWidget()
    if isinstance(main, QMainWindow):
        main.resizeDocks([dock], [height_px], Qt.Orientation.Vertical)
