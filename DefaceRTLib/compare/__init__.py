"""Comparison engine: contour, dose, location and image metrics, cohort statistics.

Slicer-independent; used by the SegmentationCompare module and by
``defacert compare`` / ``defacert cohort``.
"""
