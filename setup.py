from setuptools import find_packages, setup

setup(
    name="ahms_fm",
    version="0.1.0",
    description=(
        "Self-supervised contrastive foundation models for wearable PPG and ECG "
        "in JAX/Flax (after Abbaspourazad et al., ICLR 2024)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ahms_fm", "ahms_fm.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.7",
        "flax>=0.12",
        "optax>=0.2.5",
        "orbax-checkpoint>=0.11",
        "grain>=0.2.12",
        "tensorflow-datasets>=4.9.9",
        "ml-collections>=1.1",
        "chex>=0.1.90",
        "numpy>=1.26",
        "scipy>=1.13",
        "tqdm>=4.66",
        "tensorboardX>=2.6",  # event files without TensorFlow
        # Readers of recordings (ahms_fm/data/readers/).
        "wfdb>=4.1",
        "pyedflib>=0.1.38",
        "openpyxl>=3.1",
        "pandas>=2.0",
        "pyarrow>=14",
        "h5py>=3.10",  # MATLAB v7.3 files
        "matplotlib>=3.8",  # probe report figures
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-xdist>=3.6",
            "ruff>=0.8",
            "setuptools>=68",
            "wheel",  # tests/test_install.py builds a wheel offline
            "scikit-learn>=1.5",  # the probes' reference in tests and benchmarks
            # tests/test_notebook.py executes notebooks/embeddings.ipynb headless
            "nbclient>=0.10",
            "nbformat>=5.10",
            "ipykernel>=6.29",
        ],
        "tpu": ["jax[tpu]>=0.7", "gcsfs>=2024.2"],  # gcsfs: gs:// workdirs via etils.epath
        "gpu": ["jax[cuda12]>=0.7"],
    },
    entry_points={"console_scripts": ["ahms-fm=ahms_fm.cli:run"]},
)
