"""Step implementations. Importing this package imports every module in it once, and each
step class registers itself (see playbooks.base) as its class is created."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
