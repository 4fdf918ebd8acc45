"""Build of vetrina's Cython kernels and the folder -> package mapping.

Metadata lives in pyproject.toml. The optimisation flags are portable by default; set
``VETRINA_NATIVE=1`` to add ``-march=native`` for a local build that never leaves the machine.
"""

import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

PACKAGE_DIR = {
    "vetrina": "engine",
    "vetrina.kernels": "kernels",
    "vetrina.converters": "converters",
    "vetrina.models": "models",
}


def _compile_args() -> tuple[list[str], list[str]]:
    if sys.platform == "win32":
        return ["/O2", "/openmp"], []
    # -ffp-contract=off: no fused multiply-add, so results equal the numpy references
    # bit for bit whatever -march is used.
    cflags = ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-math-errno"]
    if os.environ.get("VETRINA_NATIVE") == "1":
        cflags.append("-march=native")
    return cflags, ["-fopenmp"]


cflags, ldflags = _compile_args()
extensions = [
    Extension(
        "vetrina.kernels._cpu",
        ["kernels/_cpu.pyx"],
        depends=["kernels/_alpha.pxi", "kernels/_cutout.pxi", "kernels/_tiles.pxi"],  # in _cpu.pyx
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )
]

setup(
    packages=[
        "vetrina",
        "vetrina.backends",
        "vetrina.pipelines",
        "vetrina.kernels",
        "vetrina.converters",
        "vetrina.models",
        "vetrina.models.architectures",
        "vetrina.models.architectures.public",
        "vetrina.models.training",
    ],
    package_dir=PACKAGE_DIR,
    package_data={
        "vetrina.models": ["zoo/*.pt", "zoo/*.json"],
        "vetrina.pipelines": ["*.yaml"],
        "vetrina.kernels": ["cuda/*.cu", "cuda/*.cuh"],  # NVRTC compiles them at run time
    },
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    zip_safe=False,
)
