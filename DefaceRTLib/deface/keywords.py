"""ROI-name rules: which ROIs are eyes, which are removed, which are kept.

Matching is case-insensitive substring matching on the ROI name, as in the
published code (github.com/kildealab/defaceRT), with explicit ignore rules
for planning helpers:

* An ROI is **ignored** for eye and keep matching when its name starts with
  ``z`` (``zEye``, ``z_PTV``) or contains ``PRV``, ``opt`` (``optBRAIN``),
  ``nos`` or ``-PTV`` (``Brain-PTV``: the brain *minus* the PTV). Keep
  matching also ignores ``nonPTV``.
* **Eye** ROIs (landmarks): names containing ``eye``, ``globe`` or ``orbit``.
* **Removed** ROIs (deleted completely): names containing ``eye``, ``globe``,
  ``orbit``, ``lens`` or ``cornea``, with the same ignore rules as for eye
  detection: a planning helper (``Eye_L_PRV``, ``optEye``, ``zLens``) is
  neither an eye nor deleted as one; it is clipped to the kept region like
  every other ROI. A kept ROI is never removed.
* **Kept** ROIs (every voxel and every contour preserved): names containing
  ``PTV`` or ``Brain`` that are not ignored. A kept ROI is never removed.

Every list is configurable through :class:`KeywordRules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List, Tuple

DEFAULT_EYE_KEYWORDS: Tuple[str, ...] = ("eye", "globe", "orbit")
DEFAULT_REMOVE_KEYWORDS: Tuple[str, ...] = ("eye", "globe", "orbit", "lens", "cornea")
DEFAULT_KEEP_KEYWORDS: Tuple[str, ...] = ("ptv", "brain")
DEFAULT_IGNORE_PREFIXES: Tuple[str, ...] = ("z",)
DEFAULT_IGNORE_SUBSTRINGS: Tuple[str, ...] = ("prv", "opt", "nos", "-ptv")
DEFAULT_KEEP_IGNORE_SUBSTRINGS: Tuple[str, ...] = ("nonptv", "non-ptv", "non_ptv")


def _norm(values: Iterable[str]) -> Tuple[str, ...]:
    return tuple(str(v).strip().lower() for v in values if str(v).strip())


@dataclass(frozen=True)
class KeywordRules:
    """Case-insensitive ROI-name rules (see the module docstring)."""

    eye: Tuple[str, ...] = DEFAULT_EYE_KEYWORDS
    remove: Tuple[str, ...] = DEFAULT_REMOVE_KEYWORDS
    keep: Tuple[str, ...] = DEFAULT_KEEP_KEYWORDS
    ignore_prefixes: Tuple[str, ...] = DEFAULT_IGNORE_PREFIXES
    ignore_substrings: Tuple[str, ...] = DEFAULT_IGNORE_SUBSTRINGS
    keep_ignore_substrings: Tuple[str, ...] = DEFAULT_KEEP_IGNORE_SUBSTRINGS

    def __post_init__(self) -> None:
        for name in ("eye", "remove", "keep", "ignore_prefixes", "ignore_substrings", "keep_ignore_substrings"):
            object.__setattr__(self, name, _norm(getattr(self, name)))

    # ------------------------------------------------------------ single names
    def is_ignored(self, name: str) -> bool:
        """Planning helper (``z*``, ``*PRV*``, ``opt*``, ``*nos*``, ``*-PTV*``)."""
        n = name.strip().lower()
        return any(n.startswith(p) for p in self.ignore_prefixes) or any(s in n for s in self.ignore_substrings)

    def is_eye(self, name: str) -> bool:
        n = name.strip().lower()
        return any(k in n for k in self.eye) and not self.is_ignored(name)

    def is_kept(self, name: str) -> bool:
        n = name.strip().lower()
        if not any(k in n for k in self.keep) or self.is_ignored(name):
            return False
        return not any(s in n for s in self.keep_ignore_substrings)

    def is_ptv(self, name: str) -> bool:
        """A PTV for reporting (``PTV`` in the name, not a helper like ``Brain-PTV``/``nonPTV``/``z_PTV``)."""
        n = name.strip().lower()
        return "ptv" in n and not self.is_ignored(name) and not any(s in n for s in self.keep_ignore_substrings)

    def is_removed(self, name: str) -> bool:
        n = name.strip().lower()
        return any(k in n for k in self.remove) and not self.is_kept(name) and not self.is_ignored(name)

    def ignored_because(self, name: str) -> str:
        """Why ``name`` is a planning helper ("" if it is not one)."""
        n = name.strip().lower()
        for p in self.ignore_prefixes:
            if n.startswith(p):
                return f"planning helper (name starts with {p!r})"
        for sub in self.ignore_substrings:
            if sub in n:
                return f"planning helper (name contains {sub!r})"
        return ""

    def removal_reason(self, name: str) -> str:
        """Why ``name`` is deleted ("" if it is not)."""
        if not self.is_removed(name):
            return ""
        n = name.strip().lower()
        keyword = next(k for k in self.remove if k in n)
        return f"name contains {keyword!r} (remove keyword): eye, lens or cornea structure"

    def spared_helpers(self, names: Iterable[str]) -> List[Tuple[str, str]]:
        """ROIs that match a remove keyword but are planning helpers, so are
        clipped instead of deleted: (name, reason)."""
        out = []
        for name in names:
            n = name.strip().lower()
            if any(k in n for k in self.remove) and not self.is_kept(name) and self.is_ignored(name):
                out.append((name, self.ignored_because(name) + ": not an eye, clipped like other ROIs"))
        return out

    # ----------------------------------------------------------------- lists
    def eyes(self, names: Iterable[str]) -> List[str]:
        return [n for n in names if self.is_eye(n)]

    def kept(self, names: Iterable[str]) -> List[str]:
        return [n for n in names if self.is_kept(n)]

    def removed(self, names: Iterable[str]) -> List[str]:
        return [n for n in names if self.is_removed(n)]

    def ptvs(self, names: Iterable[str]) -> List[str]:
        return [n for n in names if self.is_ptv(n)]

    def to_dict(self) -> dict:
        return {
            "eye": list(self.eye),
            "remove": list(self.remove),
            "keep": list(self.keep),
            "ignore_prefixes": list(self.ignore_prefixes),
            "ignore_substrings": list(self.ignore_substrings),
            "keep_ignore_substrings": list(self.keep_ignore_substrings),
        }
