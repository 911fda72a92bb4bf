"""ParaspinalSeg: Segment & Grade lumbar paraspinal muscles (3D Slicer scripted module).

A thin layer over ParaspinalSegLib. This first version measures a given segmentation from the
Python console; the panel with "Segment & Grade" comes with the module's own issue.
"""

from pathlib import Path

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class ParaspinalSeg(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "ParaspinalSeg"
        self.parent.categories = ["Segmentation"]
        self.parent.dependencies = []
        self.parent.contributors = ["ParaspinalSeg developers"]
        self.parent.helpText = (
            "Cross-sectional area and fat fraction of the lumbar erector spinae + multifidus "
            "compartments per slice, and the simplified Goutallier grade (I &lt;= 10 %, II 10-50 %, "
            "III &gt; 50 % mean fat fraction), after Baur et al., Eur Spine J 2021."
        )
        self.parent.acknowledgementText = "Method: Baur D. et al. 2021, Eur Spine J."


class ParaspinalSegWidget(ScriptedLoadableModuleWidget):
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        import qt

        label = qt.QLabel(
            "Measurement from the Python console for now:\n"
            "ParaspinalSegLogic().measureFiles(image, [segmentation], outputFolder)"
        )
        self.layout.addWidget(label)
        self.layout.addStretch(1)


class ParaspinalSegLogic(ScriptedLoadableModuleLogic):
    """Usable from the Python console with no GUI."""

    def measureFiles(self, imagePath, segmentationPaths, outputFolder, overwrite=False):
        """Measure a segmentation file (or one per angled block) of an image; returns the patient summary."""
        from ParaspinalSegLib.export import write_result
        from ParaspinalSegLib.pipeline import measure_series
        from ParaspinalSegLib.reading import read_study
        from ParaspinalSegLib.segmentation import load_segmentation

        study = read_study(Path(imagePath))
        labels = load_segmentation([Path(p) for p in segmentationPaths], study.series)
        result = measure_series(
            study.series, labels.labels, needs_fat=labels.needs_fat, label_kind=labels.kind.value, warnings=labels.warnings
        )
        write_result(Path(outputFolder), result, study.series, labels.sources, overwrite=overwrite)
        return result.summary


class ParaspinalSegTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_grade_boundaries()

    def test_grade_boundaries(self):
        from ParaspinalSegLib.grading import sgc_grade

        self.assertEqual([sgc_grade(v) for v in (10.0, 10.5, 50.0, 50.5)], ["I", "II", "II", "III"])
        self.delayDisplay("grading works inside Slicer")
