"""The `irplan` command line.

``irplan [PATH] [--screenshot OUT.png]`` opens the GUI (demo case when no PATH);
``irplan SUBCOMMAND ...`` runs a headless tool. Each subcommand lives in its own module
``irplan.app.cmd_<name>`` exposing ``add_arguments(parser)`` and ``run(args) -> int``.
Errors the user can act on (:class:`IrplanError`) print one line and exit 2; anything
unexpected prints one line and exits 1 (``IRPLAN_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable

from irplan.planning.errors import IrplanError

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("irplan.app.cmd_info", "list the DICOM series under a folder or DICOMDIR"),
    "phantom": ("irplan.app.cmd_phantom", "write synthetic cases with exact ground truth"),
    "devices": ("irplan.app.cmd_devices", "list the device catalogue"),
    "check": ("irplan.app.cmd_check", "run every safety check on a plan file"),
    "zone": ("irplan.app.cmd_zone", "predict the ablation zone of a plan file"),
    "compare-plans": ("irplan.app.cmd_compare_plans", "compare a trainee plan with a reference plan"),
    "segment": ("irplan.app.cmd_segment", "semi-automatic segmentation from seeds"),
    "evaluate": ("irplan.app.cmd_evaluate", "margin and efficacy after follow-up CT"),
    "evaluate-batch": ("irplan.app.cmd_evaluate_batch", "evaluate a whole cohort from a CSV"),
    "cohort-report": ("irplan.app.cmd_cohort_report",
                      "the cohort QC report (PDF) from an evaluate-batch results CSV"),
    "calibrate": ("irplan.app.cmd_calibrate",
                  "fit the zone model to a cohort's achieved ablation zones"),
    "report": ("irplan.app.cmd_report", "write the PDF report of a plan"),
    "export": ("irplan.app.cmd_export", "export structures/zones/report as DICOM"),
    "detect-needles": ("irplan.app.cmd_detect_needles",
                       "find the placed needles on an intra-op CT, compare with the plan"),
    "pacs": ("irplan.app.cmd_pacs", "echo, query, retrieve and send with a PACS node"),
}

NOTICE = "IRPlan is research software, not a certified medical device."


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr and exit 2 (no usage
    block): ``irplan zone: error: argument --grid-mm: 'nan' is not a finite number``."""

    def error(self, message: str) -> None:  # type: ignore[override]
        msg = " ".join(str(message).split())
        sys.stderr.write(f"{self.prog}: error: {msg} (see {self.prog} --help)\n")
        sys.exit(2)


def _gui_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="irplan",
        description="IRPlan: plan and evaluate liver tumour ablation. " + NOTICE,
        epilog="subcommands: " + ", ".join(COMMANDS) + " (irplan SUBCOMMAND --help)",
    )
    p.add_argument("path", nargs="?", help="DICOM folder, DICOMDIR or .irplan.json plan "
                   "(default: the built-in demo case)")
    p.add_argument("--demo", action="store_true", help="open the built-in demo case")
    p.add_argument("--screenshot", metavar="OUT.png",
                   help="render every view, save a PNG of the window and exit")
    return p


# commands that use SimpleITK: its (ITK) warnings are switched off so that they never
# print before IRPlan's own message
_SITK_COMMANDS = {"zone", "segment", "evaluate", "evaluate-batch", "report", "export",
                  "check", "compare-plans", "phantom", "detect-needles", "calibrate"}
MAX_NOTES = 5


def _quiet_libraries(name: str) -> None:
    if name in _SITK_COMMANDS:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalWarningDisplay(False)


def _loader_warnings_to_stderr() -> Callable[[], None]:
    """Every DICOM loader warning (uneven spacing, gaps, tilt, ...) as one stderr line
    while a command runs; returns the function that stops it."""
    from irplan.io.dicom_load import add_warning_sink

    seen: set[str] = set()

    def sink(message: str) -> None:
        text = " ".join(message.split())
        if text not in seen:
            seen.add(text)
            print(f"irplan: warning: {text}", file=sys.stderr)

    return add_warning_sink(sink)


_IGNORED = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


class _LogCollector(logging.Handler):
    """Keeps library log records (pydicom, pynetdicom warnings) for the notes."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"{record.name}: {record.getMessage()}")
        except Exception:  # noqa: BLE001 - a bad log record must not break a command
            pass


def _print_notes(caught: list[warnings.WarningMessage], logged: list[str] = ()) -> None:
    """Library warnings (numpy, pydicom, ...) caught while a command ran, as one-line
    notes after its output (never before an error message)."""
    lines = [f"{w.category.__name__}: {w.message}" for w in caught
             if not issubclass(w.category, _IGNORED)] + list(logged)
    lines = list(dict.fromkeys(" ".join(line.split()) for line in lines))
    for line in lines[:MAX_NOTES]:
        print(f"irplan: note: {line[:300]}", file=sys.stderr)
    if len(lines) > MAX_NOTES:
        print(f"irplan: note: ... and {len(lines) - MAX_NOTES} more library warning(s)",
              file=sys.stderr)


def _run_subcommand(name: str, argv: list[str]) -> int:
    module_name, help_text = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            print(f"irplan {name}: not available in this build", file=sys.stderr)
            return 2
        raise
    parser = OneLineParser(prog=f"irplan {name}", description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    _quiet_libraries(name)
    stop_sink = _loader_warnings_to_stderr()
    collector = _LogCollector()
    lib_loggers = [logging.getLogger(n) for n in ("pydicom", "highdicom", "PIL")]
    saved = [(lg, lg.propagate) for lg in lib_loggers]
    for lg in lib_loggers:
        lg.addHandler(collector)
        lg.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = int(module.run(args) or 0)
    finally:
        stop_sink()
        for lg, prop in saved:
            lg.removeHandler(collector)
            lg.propagate = prop
    _print_notes(caught, collector.lines)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in COMMANDS:
            return _run_subcommand(argv[0], argv[1:])
        args = _gui_parser().parse_args(argv)
        from irplan.app.gui_main import run_gui

        return run_gui(args)
    except IrplanError as exc:
        print(f"irplan: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("irplan: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.filename is None:   # not about a file the user named: an internal error
            return _internal_error(exc)
        from irplan.io.atomic_write import os_error_message

        print(f"irplan: error: {os_error_message(exc.filename, exc, 'cannot access')}",
              file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, no traceback
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    if os.environ.get("IRPLAN_DEBUG"):
        traceback.print_exc()
    text = " ".join(str(exc).split())[:300]
    print(f"irplan: internal error: {type(exc).__name__}: {text} "
          "(set IRPLAN_DEBUG=1 for details)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
