"""Glue between 3D Slicer's MRML nodes and DefaceRTLib, shared by the
DefaceRT, FaceRecognitionQA and SegmentationCompare modules.

* :mod:`.convert`: the one place where Slicer's RAS coordinates become
  DICOM LPS and back (numpy only, testable without Slicer).
* :mod:`.nodes`: volume, segmentation, markups and table nodes to and from
  DefaceRTLib's geometry-aware arrays (needs Slicer).
* :mod:`.dependencies`: installs packages Slicer does not bundle, on first
  use and after the user agrees, without touching Slicer's own numpy, VTK,
  SimpleITK or pydicom.

DefaceRTLib itself never imports Slicer; everything that decides anything
lives there.
"""
