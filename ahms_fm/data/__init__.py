"""Data: recordings on disk -> preprocessed segments -> datasets -> paired batches."""
