"""Face rendering, offline face recognition and the privacy study.

Modules: :mod:`.surface` (skin meshes in LPS mm), :mod:`.render` (headless
VTK frontal renders with depth maps and projected landmarks),
:mod:`.landmarks`, :mod:`.backends` (pluggable detector/embedder; offline
MTCNN + FaceNet by default), :mod:`.crop`, :mod:`.distance`, :mod:`.study`
(cohort privacy study) and :mod:`.check` (defacing-success check).

Nothing here imports Slicer or Qt; nothing is downloaded at run time.
"""
