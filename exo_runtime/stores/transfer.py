"""How a block gets from one store to another: directly when one side is host memory, else bounced.

* ``source``: the source slab is addressable host memory (``ram``, ``shm``, ``pinned``) and the
  destination takes any host rows (not the O_DIRECT file, which needs aligned rows): its slot rows
  are handed to the destination's ``write`` — one memcpy (or one DMA into a ``cuda`` slab).
* ``destination``: the destination slab is host memory and the source fills any host rows (a
  ``cuda`` slab): the source reads straight into the destination's slot rows.
* ``bounce``: otherwise (the file tier on either side): read into an aligned bounce row, write from it.

The executor and ``exo-calibrate``'s raw copy both take the path :func:`copy_path` names, so that a
link's calibrated bandwidth is the one the executor can reach.
"""

from __future__ import annotations

from exo_runtime.stores.base import Store

PATHS = ("source", "destination", "bounce")


def copy_path(src: Store, dst: Store) -> str:
    """Which way blocks go from ``src`` to ``dst`` (see the module docstring)."""
    if src.host_view() is not None and dst.row_align == 1:
        return "source"
    if dst.host_view() is not None and src.row_align == 1:
        return "destination"
    return "bounce"
