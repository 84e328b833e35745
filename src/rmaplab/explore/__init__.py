"""Exhaustive exploration of racing kernel paths (``rmaplab explore``).

* :mod:`~rmaplab.explore.locks`: the locks and the documented lock order.
* :mod:`~rmaplab.explore.world`: the shared state of one execution and the
  steps a thread yields.
* :mod:`~rmaplab.explore.paths`: kernel paths (fork, mremap, split, merge,
  munmap, exit, THP split) and rmap walkers as generators, per design.
* :mod:`~rmaplab.explore.explorer`: litmus files, the scheduler (bounded
  DFS with state caching, PCT random mode), replay and reports.
"""
