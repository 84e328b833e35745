"""rmaplab: an executable laboratory for Linux anonymous reverse-mapping designs.

The machine model (:mod:`rmaplab.machine`) runs scenarios
(:mod:`rmaplab.scenario`) through an rmap design (:mod:`rmaplab.designs`);
:mod:`rmaplab.check` verifies every rmap walk against the ground-truth page
tables; :mod:`rmaplab.kernel` runs the same scenarios on the live kernel.
"""

__version__ = "0.1.0"
