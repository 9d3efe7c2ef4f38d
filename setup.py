"""dealthdr-jax: HDR video from degraded alternating-exposure LDR video, in JAX/Flax."""
import pathlib

from setuptools import setup

HERE = pathlib.Path(__file__).parent
REQUIREMENTS = [
    line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="dealthdr-jax",
    version="0.1.0",
    description="Degraded alternating-exposure video to HDR video (DeAltHDR reimplementation) in JAX/Flax",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=["dealthdr_jax", "dealthdr_jax.models", "dealthdr_jax.training",
              "dealthdr_jax.inference", "dealthdr_jax.evaluation", "data_pipeline", "configs",
              "configs.ablations"],
    # The shipped models are data files of dealthdr_jax, not packages.
    package_data={"dealthdr_jax": ["assets/models/*/*.json", "assets/models/*/*.msgpack"]},
    include_package_data=False,
    install_requires=REQUIREMENTS,
    extras_require={
        "dev": ["pytest==9.2.0", "pytest-xdist==3.8.0"],
        # ColorVideoVDP (`dealthdr eval --perceptual`, results-table JOD column). Pinned to
        # the PyTorch releases the dev/CI machines hold on disk (a multi-GB CUDA build of
        # torch on x86_64 PyPI; it runs on the CPU).
        "perceptual": ["cvvdp==0.5.7", "torch==2.14.1", "torchvision==0.29.1"],
        # `dealthdr synth --format array_record --beam`: shard rendering on Apache Beam
        # (DirectRunner here; Dataflow / Flink / Spark with their own extras).
        "beam": ["apache-beam==2.77.0"],
    },
    entry_points={"console_scripts": ["dealthdr=dealthdr_jax.cli:main"]},
)
