"""DefaceRTLib: Slicer-independent logic of the SlicerDefaceRT extension.

Removes identifiable faces from head-and-neck radiotherapy data (CT, RT
Structure Set, RT Dose, RT Plan) while keeping PTVs, the brain and the dose in
them, and checks the result (face recognition, contour and dose metrics).

Coordinates are DICOM patient coordinates (LPS, millimetres) throughout;
arrays are indexed ``[k, j, i]`` (slice, row, column) as in SimpleITK.
This package never imports slicer, qt or ctk.
"""

__version__ = "0.1.0"
