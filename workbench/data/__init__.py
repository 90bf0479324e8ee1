"""Data: labelled images or texts in a train and a valid split, from bundled sets or your own.

    data = load_data("mnist-5k")            # offline: "mnist-5k", "digits", "rotten-tomatoes", "sms-spam"
    data = Data.from_folder("pets/")        # or from_dataframe, from_arrays, from_texts, from_torchvision, from_hf
    data.item(0, split="valid")             # a PIL image or a str

Importing this package loads numpy, pandas and PIL only; torch, torchvision, scikit-learn and
`datasets` load when a function needs them.
"""

from __future__ import annotations

from .bundled import list_datasets, load_data
from .core import Data, Split

__all__ = ["Data", "Split", "list_datasets", "load_data"]
