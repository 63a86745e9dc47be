"""genai-prices' bundled table and price arithmetic, loaded without what this offline use never runs.

``import genai_prices`` runs the package's ``__init__``, which also imports what fetches newer
prices (httpx) and reads its version with importlib.metadata; and its ``types`` module imports
pydantic and builds two ``TypeAdapter`` schemas at import. pydantic is used there only to validate
price tables fetched as JSON (``_providers_from_raw``, for ``UpdatePrices``); the bundled table
is Python that builds the package's plain dataclasses, and ``calc_price`` never touches pydantic.
Together that is 70-100 ms of CPU of the 100-170 ms a table costs, at a cold start where both
cores are reading the history.

So :func:`load` loads ``data_snapshot``, ``types`` and the modules they import lazily under the
package's name without running ``__init__``, and, when pydantic is not imported already, with an
inert stand-in for the five names ``types`` takes from it at import. The stand-in is removed once
the modules are loaded (a later ``import pydantic`` gets the real one); what it left in ``types``
(the schemas for fetched tables) says so if it is ever used. Should any of this fail (a release
that uses more of pydantic at import), the package is imported as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types as pytypes

log = logging.getLogger(__name__)

# Submodules genai-prices' types import inside functions (0.2.x): the table itself, and what
# pricing a request reaches.
LAZY_SUBMODULES = ("genai_prices.data", "genai_prices.units", "genai_prices.decompose",
                   "genai_prices.validation")
# What genai_prices.types (0.2.x) takes from pydantic when it is imported.
_PYDANTIC_NAMES = ("Tag", "Discriminator", "Field", "TypeAdapter", "ConfigDict")


class _Unavailable:
    """What the stand-in gives ``types`` for a pydantic name: holds its arguments, does nothing."""

    def __init__(self, *args, **kwargs):
        self._args = (args, kwargs)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError("genai-prices was loaded by helm-monitor for its bundled table only (without "
                           "pydantic); validating fetched price tables is not available in this process")


def _pydantic_stand_in() -> pytypes.ModuleType:
    module = pytypes.ModuleType("pydantic", "helm-monitor's inert stand-in, only while genai-prices loads")
    for name in _PYDANTIC_NAMES:
        setattr(module, name, _Unavailable)

    def missing(name):  # a name a newer release takes at import: load as it is instead
        raise AttributeError(f"pydantic stand-in has no {name!r}")
    module.__getattr__ = missing
    return module


def load():
    """``(data_snapshot, types)`` of genai-prices, loaded lean when it can be, else by its import."""
    if sys.modules.get("genai_prices") is None:
        spec = importlib.util.find_spec("genai_prices")
        if spec is not None and spec.submodule_search_locations:
            stand_ins = {"genai_prices": pytypes.ModuleType("genai_prices")}
            stand_ins["genai_prices"].__path__ = list(spec.submodule_search_locations)
            if "pydantic" not in sys.modules:
                stand_ins["pydantic"] = _pydantic_stand_in()
            sys.modules.update(stand_ins)
            try:
                from genai_prices import data_snapshot, types
                for name in LAZY_SUBMODULES:
                    importlib.import_module(name)
                return data_snapshot, types
            except Exception:
                log.debug("loading genai-prices' table alone failed; importing the package", exc_info=True)
                for name in [n for n in sys.modules if n == "genai_prices" or n.startswith("genai_prices.")]:
                    del sys.modules[name]
            finally:
                for name, module in stand_ins.items():
                    if sys.modules.get(name) is module:
                        del sys.modules[name]  # the real package, if anyone imports it, runs __init__
    from genai_prices import data_snapshot, types
    return data_snapshot, types
