"""``parameterNodeWrapper`` GUI connections that can be undone on every Slicer version (no Qt here).

``connectGui`` returns the tag that ``disconnectGui`` needs from Slicer 5.10
on; on 5.8 it returns None (the wrapper keeps the tag in its
``_parameterGUIs`` dictionary but drops it on return), so
``disconnectGui(None)`` does nothing and the GUI connectors pile up each time
the module is entered. :func:`connectGui` finds the tag(s) either way;
:func:`disconnectGui` removes them.
"""

from __future__ import annotations

from typing import List


def connectGui(wrapper, gui) -> List[object]:
    """Connect ``gui`` to the parameter node ``wrapper``; returns the tags to disconnect."""
    before = set(getattr(wrapper, "_parameterGUIs", {}) or {})
    tag = wrapper.connectGui(gui)
    if tag is not None:
        return [tag]
    # Slicer 5.8: the tag is the key connectGui just added
    return [t for t in getattr(wrapper, "_parameterGUIs", {}) if t not in before]


def disconnectGui(wrapper, tags) -> None:
    for tag in tags or []:
        wrapper.disconnectGui(tag)
