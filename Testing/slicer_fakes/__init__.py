"""Stand-ins for 3D Slicer's Python modules, so that the module files run end to end in pytest.

3D Slicer cannot be installed here. These are small fakes of ONLY the calls the modules make:
`slicer` (scene, app, util, ScriptedLoadableModule, modules.tables/plots, segment status, dicomDatabase),
`DICOMLib.DICOMUtils` (importDicom, recorded),
`vtk` (vtkMatrix4x4), `qt` (QTimer, fired by tests; QTableWidgetItem) and `ctk` (empty: the
panels' widgets come from their real .ui files, faked by class), and the PyTorch extension's
`PyTorchUtils`. They use Slicer's names and parameter names (Testing/slicer/test_slicer_api.py checks the
modules' names against Slicer's API reference), keep voxels in numpy arrays in [K, J, I] order,
and record dialogs, installs and layouts for tests.

They are not Slicer and prove nothing about Slicer's own behaviour: each module's real check is
its self-test inside Slicer (README, "In 3D Slicer").
"""

from .modules import FakeSlicer, install

__all__ = ["FakeSlicer", "install"]
