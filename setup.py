"""Builds the compiled parts (everything else is in pyproject.toml).

* ``exo_sim._core``: the decision core (the hierarchy's cascade, the block index, the native
  eviction policies), C against CPython's stable headers; ``exo_sim/native/``.
* ``exo_runtime.native._fused``: the runtime's fused load path (checksum + decode).


The C needs only CPython's headers. It is built for the baseline of its platform (no ``-march``): the
x86-64 kernels that need SSE4.2, AVX2 or F16C carry their own ``__attribute__((target))`` and are
chosen at run time, so a wheel or an editable install works on any CPU of its architecture.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "exo_sim._core",
            sources=[
                "exo_sim/native/module.c",
                "exo_sim/native/keymap.c",
                "exo_sim/native/policy.c",
                "exo_sim/native/queue.c",
                "exo_sim/native/hierarchy.c",
                "exo_sim/native/keyset.c",
                "exo_sim/native/keys.c",
                "exo_sim/native/arc.c",
                "exo_sim/native/lfu.c",
                "exo_sim/native/belady.c",
                "exo_sim/native/nodes.c",
                "exo_sim/native/sieve.c",
                "exo_sim/native/s3fifo.c",
            ],
            depends=["exo_sim/native/core.h", "exo_sim/native/nodes.h"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-missing-field-initializers"],
        ),
        Extension(
            "exo_runtime.native._fused",
            sources=["exo_runtime/native/fused.c"],
            extra_compile_args=["-O3", "-std=gnu11", "-ffp-contract=off", "-Wall", "-Wextra"],
        )
    ]
)
