"""Reading a study: DICOM and volume files, series choice, input checks, segmentation files."""
