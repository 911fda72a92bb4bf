"""Measuring a segmentation: fat, areas and fat fractions, grading, quality warnings."""
