"""The Qt application: main window, workflow panels, dialogs, the `irplan` command line."""
