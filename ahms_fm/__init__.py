"""ahms_fm: self-supervised contrastive foundation models for wearable PPG and ECG.

An open JAX/Flax implementation of Abbaspourazad et al., "Large-scale Training
of Foundation Models for Wearable Biosignals" (ICLR 2024).
"""

__version__ = "0.1.0"
