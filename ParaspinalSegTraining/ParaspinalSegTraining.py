"""ParaspinalSegTraining: from corrected segmentations to a better model (3D Slicer scripted module).

A thin layer over ParaspinalSegTrainingLib; training from Slicer comes with the module's own issue.
"""

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class ParaspinalSegTraining(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "ParaspinalSeg Training"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = ["ParaspinalSeg"]
        self.parent.contributors = ["ParaspinalSeg developers"]
        self.parent.helpText = "Fine-tunes the ParaspinalSeg model on corrected cases (in development)."
        self.parent.acknowledgementText = "Method: Baur D. et al. 2021, Eur Spine J."


class ParaspinalSegTrainingWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        import qt

        self.layout.addWidget(qt.QLabel("Training from Slicer is in development."))
        self.layout.addStretch(1)


class ParaspinalSegTrainingLogic(ScriptedLoadableModuleLogic):
    """Usable from the Python console with no GUI."""

    def writeSampleStudy(self, folder):
        """Write the synthetic sample study (DICOM series, compartment map, truth) into a folder."""
        from ParaspinalSegTrainingLib.sample import write_sample_study

        return write_sample_study(folder)


class ParaspinalSegTrainingTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            truth = ParaspinalSegTrainingLogic().writeSampleStudy(folder)
            self.assertIn(truth["grade"], ("I", "II", "III"))
        self.delayDisplay("sample study written")
