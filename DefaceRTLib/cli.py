"""The ``defacert`` command line.

Exit codes (documented in ``defacert --help``):

* 0: success
* 1: the job ran but a check failed (for example defacing verification)
* 2: usage error (bad options)
* 3: bad input (unreadable, inconsistent or unsupported data)
* 4: the output cannot be written where it was asked to go
* 5: partly done: some studies of a tree failed (each listed with its file);
  the others were written and verified
* 6: a package the job needs is not installed (for example ``distributed`` for ``--scheduler``)
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.abc
import os
import pkgutil
import sys
from typing import List, Optional

from . import __version__
from .errors import DefaceRTError, MissingDependencyError, OutputError, missing_dependency

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_OUTPUT = 4
EXIT_PARTIAL = 5
EXIT_DEPENDENCY = 6

EPILOG = """exit codes:
  0  success
  1  the job ran but a check failed (e.g. defacing verification)
  2  usage error
  3  bad input (unreadable, inconsistent or unsupported data)
  4  output cannot be written where asked
  5  partly done: some studies of a tree failed (each listed with its file),
     the others were written and verified
  6  a package the job needs is not installed
"""


def command_names() -> List[str]:
    """The subcommands (``deface``, ``face-distance``, ...), sorted, without
    importing their modules."""
    from . import commands

    return sorted(
        info.name.replace("_", "-") for info in pkgutil.iter_modules(commands.__path__) if not info.name.startswith("_")
    )


def _command_modules(only: Optional[str] = None):
    """(name, module) of every subcommand, or of ``only`` when it names one:
    a run imports just the module of the command it runs (``deface`` does
    not pay for the comparison or rendering imports of the others)."""
    from . import commands

    names = command_names()
    for name in [only] if only in names else names:
        yield name, importlib.import_module(f"{commands.__name__}.{name.replace('-', '_')}")


#: Options whose value is a coordinate list such as ``-33,-60,20``: argparse
#: would take a value starting with "-" for an option, so they are joined
#: as ``--option=value`` before parsing.
COORDINATE_OPTIONS = ("--eye-center", "--landmarks")


def _join_coordinate_values(argv: List[str]) -> List[str]:
    out: List[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in COORDINATE_OPTIONS and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``defacert`` parser. With ``command`` (a subcommand name) only
    that subcommand is added; ``defacert --help`` and unknown names get all."""
    parser = argparse.ArgumentParser(
        prog="defacert",
        description="Deface head-and-neck radiotherapy data (CT, RTSTRUCT, RTDOSE, RTPLAN) and check the result.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in _command_modules(command):
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _without_huge_pages() -> None:
    """Ask numpy (through its documented ``NUMPY_MADVISE_HUGEPAGE``, read
    when numpy is imported) not to request transparent huge pages for large
    arrays, unless the user chose otherwise.

    With the kernel's ``defrag`` setting ``madvise`` (a common default) the
    first touch of such an array can stall in page compaction: copying the
    512 x 512 x 180 CT took 0.17-0.22 s of system time instead of 0.06 s
    here. Huge pages also make the forked QA and verification children copy
    2 MB on the first write to a shared page instead of 4 kB. Only this
    command's process (and the workers it starts) is affected, and only when
    numpy is not imported yet."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")


#: modules that pydicom imports with itself but a run never uses: its example
#: datasets (pydicom 3: importing them looks up a dozen test files), the ICC
#: colour management of Pillow, and urllib.request (with http and ssl) for its
#: test-data download: together 0.02-0.04 s of every run's start on this
#: machine. (tqdm, which that download also imports, is subclassed there at
#: once: deferring it would gain nothing.)
DEFERRED_IMPORTS = ("pydicom.examples", "PIL.ImageCms", "urllib.request")


class _DeferredImports(importlib.abc.MetaPathFinder):
    """Finds the :data:`DEFERRED_IMPORTS` as the import system would, with
    their loader wrapped in :class:`importlib.util.LazyLoader`: the module is
    created (and bound where it is imported) at once, and executed on the
    first access to one of its attributes. A missing module still raises
    ``ImportError`` at its import."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in DEFERRED_IMPORTS:
            return None
        import importlib.machinery
        import importlib.util

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def _defer_unused_imports() -> None:
    """Let this command's process import the :data:`DEFERRED_IMPORTS` only
    when one of them is used (:class:`_DeferredImports`); the library
    imported by other programs (3D Slicer) is not affected."""
    if not any(isinstance(f, _DeferredImports) for f in sys.meta_path):
        sys.meta_path.insert(0, _DeferredImports())


def _requested_command(argv: List[str]) -> Optional[str]:
    """The subcommand named on the command line (its first word; the top
    level has no options that take a value), or None."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``defacert`` with ``argv`` (default: this process's arguments).

    Called without ``argv`` (as the installed command and ``python -m
    DefaceRTLib`` do) it ends by freezing the garbage collector's objects
    (:func:`gc.freeze`) so that the interpreter's exit does not walk them all
    once more in a last collection: with a study's headers and contours
    still referenced by modules, that was ~0.1 s of every run."""
    try:
        return _main(argv)
    finally:
        if argv is None:
            gc.freeze()


def command() -> None:
    """The ``defacert`` command as installed (and ``python -m DefaceRTLib``):
    :func:`main` with this process's arguments, then the process ends.

    A run leaves a study's headers, contours and volumes referenced by
    modules; the interpreter's usual exit deallocates every one of them and
    tears the modules down (0.03-0.05 s of every run, and memory touched
    once more). When :func:`main` returns and no other thread is alive, the
    exit is instead what remains of it: the ``atexit`` functions are run
    (library shutdown hooks, ``weakref.finalize`` callbacks), standard output
    and error are flushed, and the process ends with ``os._exit`` and
    :func:`main`'s exit code. Everything the command writes is closed by then
    (each file is written in a ``with`` block and re-read to verify it). Any
    other way out (an exception, ``SystemExit`` from the argument parser,
    another thread still running, a stream that cannot be flushed) is the
    interpreter's usual exit."""
    code = main()
    _exit_now(code)


def _exit_now(code: int) -> None:
    import atexit
    import threading

    if threading.active_count() != 1:
        sys.exit(code)  # a thread to join first: the usual exit
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)  # let the interpreter report it as it does
    os._exit(code)


def _main(argv: Optional[List[str]]) -> int:
    _without_huge_pages()
    if argv is None:
        _defer_unused_imports()
    argv = _join_coordinate_values(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser(_requested_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except OutputError as exc:
        print(f"defacert {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_OUTPUT
    except MissingDependencyError as exc:
        print(f"defacert {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_DEPENDENCY
    except DefaceRTError as exc:
        print(f"defacert {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except ImportError as exc:
        missing = missing_dependency(exc, sys.executable)
        if missing is None:
            raise
        print(f"defacert {args.command}: error: {missing}", file=sys.stderr)
        return EXIT_DEPENDENCY
    except KeyboardInterrupt:
        print(f"defacert {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a command that stopped reading (head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
