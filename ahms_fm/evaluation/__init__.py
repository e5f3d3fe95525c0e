"""Evaluation: embeddings from checkpoints, linear probes, baselines and reports."""
