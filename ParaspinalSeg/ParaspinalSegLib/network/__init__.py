"""The segmentation network: model folders, registry, runtimes, pre- and post-processing, inference."""
