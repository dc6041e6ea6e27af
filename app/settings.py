"""Persistent user settings (window geometry/state, last folders, display choices).

Stored with QSettings as an INI file in ``$IRPLAN_CONFIG_DIR`` when that is set (tests
set it, so they never touch the user's own settings), else in Qt's standard per-user
location (organisation "IRPlan", application "IRPlan").
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QSettings

ORGANISATION = "IRPlan"
APPLICATION = "IRPlan"


def config_dir() -> Path | None:
    """The IRPLAN_CONFIG_DIR folder, or None when unset."""
    d = os.environ.get("IRPLAN_CONFIG_DIR")
    return Path(d).expanduser() if d else None


def app_settings() -> QSettings:
    """The application's QSettings (INI file in IRPLAN_CONFIG_DIR when set)."""
    d = config_dir()
    if d is not None:
        d.mkdir(parents=True, exist_ok=True)
        return QSettings(str(d / "irplan.ini"), QSettings.Format.IniFormat)
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANISATION,
                     APPLICATION)
