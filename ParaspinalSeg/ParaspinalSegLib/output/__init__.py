"""Writing results: CSV/JSON, .seg.nrrd, QC picture, DICOM SEG and SR, Slicer volumes and tables."""
