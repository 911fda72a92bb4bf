"""ParaspinalSegLib: reading, geometry, fat quantification, measurement, grading and export.

Everything here imports without 3D Slicer. Heavy packages (torch, segmentation-models-pytorch)
are imported only inside the functions that need them.
"""

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
