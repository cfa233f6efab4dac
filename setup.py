"""Builds the one compiled part, ``exo_runtime.native._fused`` (everything else is in pyproject.toml).

The C needs only CPython's headers. It is built for the baseline of its platform (no ``-march``): the
x86-64 kernels that need SSE4.2, AVX2 or F16C carry their own ``__attribute__((target))`` and are
chosen at run time, so a wheel or an editable install works on any CPU of its architecture.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "exo_runtime.native._fused",
            sources=["exo_runtime/native/fused.c"],
            extra_compile_args=["-O3", "-std=gnu11", "-ffp-contract=off", "-Wall", "-Wextra"],
        )
    ]
)
