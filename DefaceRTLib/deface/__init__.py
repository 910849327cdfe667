"""PTV-preserving eye-landmark defacing of CT, RT Structure Set, RT Dose and RT Plan.

One module per job:

* :mod:`.keywords`   which ROIs are eyes, removed, kept (PTV, brain)
* :mod:`.landmarks`  eye landmarks and the reference cut definition (LPS mm)
* :mod:`.region`     the removed region in patient coordinates, masks on any grid
* :mod:`.ct`         removed image voxels -> air in stored units
* :mod:`.structures` ROI removal and exact polygon clipping (shapely)
* :mod:`.dose`       dose zeroed in the removed region, kept structures guarded
* :mod:`.pipeline`   :func:`deface_study` (in memory) and :func:`deface_path` (files, trees)
* :mod:`.verify`     self-verification of the written output
* :mod:`.qa`         the QA figure

See ``docs/deface-method.md`` for the method and the deliberate differences
from the published code.
"""

from .keywords import KeywordRules
from .landmarks import Landmarks
from .pipeline import DefaceOptions, DefaceResult, deface_path, deface_study
from .region import CutRegion, Margins

__all__ = [
    "CutRegion",
    "DefaceOptions",
    "DefaceResult",
    "KeywordRules",
    "Landmarks",
    "Margins",
    "deface_path",
    "deface_study",
]
