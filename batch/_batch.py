"""Shared start-up for the batch scripts (imported by them, not run).

The scripts run the same way under ``python script.py ...`` and
``Slicer --no-main-window --python-script script.py ...``: they only use
DefaceRTLib, find it beside the script's folder when run from a source
checkout, and end Slicer with the script's exit code.
"""

from __future__ import annotations

import os
import sys
import traceback

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.path.isdir(os.path.join(_ROOT, "DefaceRTLib")) and _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


def run_main(main) -> None:
    """Run ``main(argv) -> int`` and exit with its code (Slicer: slicer.util.exit).

    DefaceRTLib errors print one clear line and use the command line's exit
    codes (3 bad input, 4 output cannot be written, 6 a package is missing:
    the script was run with a Python that lacks DefaceRTLib's dependencies)."""
    from DefaceRTLib.cli import EXIT_DEPENDENCY, EXIT_INPUT, EXIT_OUTPUT
    from DefaceRTLib.errors import DefaceRTError, MissingDependencyError, OutputError, missing_dependency

    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        # "Slicer --python-script x.py -- --help": Slicer reads options itself
        # (its own --help) unless they follow "--"; the separator is not ours
        argv = argv[1:]
    try:
        code = int(main(argv) or 0)
    except SystemExit as exc:  # argparse --help / usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    except MissingDependencyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_DEPENDENCY
    except DefaceRTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        code = EXIT_OUTPUT if isinstance(exc, OutputError) else EXIT_INPUT
    except ImportError as exc:
        missing = missing_dependency(exc, sys.executable)
        if missing is None:
            traceback.print_exc()
            code = 1
        else:
            print(f"error: {missing}", file=sys.stderr)
            code = EXIT_DEPENDENCY
    except Exception:
        traceback.print_exc()
        code = 1
    slicer = sys.modules.get("slicer")
    if slicer is not None and hasattr(slicer, "util") and hasattr(slicer.util, "exit"):
        slicer.util.exit(code)
    else:
        sys.exit(code)
