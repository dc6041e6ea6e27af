"""The application's dark style sheet (set on the QApplication by gui_main)."""

STYLE_SHEET = """
QMainWindow, QWidget { background: #1e2127; color: #d7dae0; }
QMenuBar, QMenu { background: #23272e; color: #d7dae0; }
QMenu::item:selected, QMenuBar::item:selected { background: #3a4150; }
QToolBar { background: #23272e; border: 0; spacing: 4px; padding: 2px; }
QToolButton { padding: 3px 7px; border-radius: 3px; }
QToolButton:hover { background: #343a46; }
QToolButton:checked { background: #3d5a80; color: white; }
QToolButton#stepButton { padding: 6px 4px; font-weight: bold; background: #2a2f38; }
QToolButton#stepButton:checked { background: #3d5a80; }
QGroupBox { border: 1px solid #3a404c; border-radius: 4px; margin-top: 14px;
            padding-top: 4px; font-weight: bold; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; color: #aab4c4; }
QTreeWidget { background: #181a1f; alternate-background-color: #1f2228;
              border: 1px solid #3a404c; }
QHeaderView::section { background: #2a2f38; color: #c0c6d0; border: 0; padding: 3px; }
QStatusBar { background: #16181c; color: #c9ced6; }
QStatusBar QLabel { padding: 0 6px; }
QLabel#notice { background: #6b4a00; color: #ffe4a3; font-weight: bold; padding: 3px 8px; }
QLabel#statusNotice { color: #ffcf66; font-weight: bold; }
QComboBox, QPushButton { background: #2c313a; border: 1px solid #454c59; padding: 2px 6px;
                         border-radius: 3px; }
QPushButton:disabled, QComboBox:disabled, QToolButton:disabled {
    color: #5f6673; background: #23262c; border-color: #30343c; }
QAbstractSpinBox:disabled, QCheckBox:disabled, QRadioButton:disabled { color: #5f6673; }
QProgressBar { border: 1px solid #454c59; border-radius: 3px; text-align: center;
               background: #181a1f; }
QProgressBar::chunk { background: #3d7bd9; }
QSplitter::handle { background: #2a2f38; }
"""
