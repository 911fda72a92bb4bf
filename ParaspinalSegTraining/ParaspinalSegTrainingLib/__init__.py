"""ParaspinalSegTrainingLib: synthetic data (phantom, sample study, DICOM writer) and model training."""
