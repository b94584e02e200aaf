"""Compatibility shim: the schedules live in `coolmix.schedules` (one module per family).

``from coolmix.schedule import X`` keeps working for every public name of the package.
"""

from coolmix.schedules import *  # noqa: F403  (the shim re-exports exactly the package's public names)
from coolmix.schedules import __all__ as __all__
