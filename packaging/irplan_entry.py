"""Entry point of the frozen bundle (PyInstaller): the same ``irplan`` command as the
installed console script (irplan.app.cli:main).

Two things only a frozen program needs:
- ``multiprocessing.freeze_support()``: the GUI's worker processes ("spawn") start this
  executable again, which must then run the worker instead of the CLI;
- ``irplan-bin -m irplan.app.cli ARGS``: the GUI starts the report writer as
  ``sys.executable -m irplan.app.cli report ...`` (app/report_action.py); here
  ``sys.executable`` is the bundle, so the ``-m irplan.app.cli`` prefix is dropped.
"""

from __future__ import annotations

import multiprocessing
import sys


def main() -> int:
    multiprocessing.freeze_support()
    argv = sys.argv[1:]
    if argv[:2] == ["-m", "irplan.app.cli"]:
        argv = argv[2:]
    from irplan.app.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
