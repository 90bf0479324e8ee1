"""Data made again from its recipe: the calls that built it (`data.recipe`), replayed.

wb.load_data, Data.from_folder, from_torchvision and from_hf record themselves, and so does
`.subset` and `.with_label_noise`; a checkpoint, `session.to_code()` and a launched script rebuild the same data from them.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError


def replay(calls: list[dict[str, Any]]):
    """The Data the recipe `calls` describes (same splits: every call is seeded)."""
    from . import Data, load_data

    known = {"wb.load_data": load_data, "wb.Data.from_folder": Data.from_folder,
             "wb.Data.from_torchvision": Data.from_torchvision, "wb.Data.from_hf": Data.from_hf}
    data = None
    for step in calls:
        call, args, kwargs = step.get("call"), step.get("args", []), step.get("kwargs", {})
        if call == "subset" and data is not None:
            data = data.subset(**kwargs)
        elif call == "with_label_noise" and data is not None:
            data = data.with_label_noise(**kwargs)
        elif call in known and data is None:
            data = known[call](*args, **kwargs)
        else:
            raise ConfigError(f"The data recipe step {call!r} is not one this workbench can replay.")
    if data is None:
        raise ConfigError("The data recipe is empty.")
    return data
