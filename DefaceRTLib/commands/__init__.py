"""Sub-commands of the ``defacert`` command line.

Each module here exposes ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``; :mod:`DefaceRTLib.cli` finds them by name (the command
is the module name with ``_`` replaced by ``-``).
"""
