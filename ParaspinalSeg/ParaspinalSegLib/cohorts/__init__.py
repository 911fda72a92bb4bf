"""Batches and cohorts: many studies per run, shards, resume, Dask engine, cohort summary."""
