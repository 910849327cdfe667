"""``python -m DefaceRTLib`` is the ``defacert`` command line."""

from .cli import command

command()
