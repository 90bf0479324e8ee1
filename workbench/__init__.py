"""workbench: fine-tune pretrained models hands-on in JupyterLab.

    import workbench as wb
    data = wb.load_data("mnist-5k")
    model = wb.load_backbone("efficientnet_lite0", num_classes=data.num_classes)

Names are resolved lazily (PEP 562): `import workbench` stays cheap, a headless script never
loads ipywidgets, and the widgets load on first use.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DataNotFoundError,
    HubUnavailableError,
    MissingDependencyError,
    TrainingError,
    WorkbenchError,
)

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "Data": "workbench.data",
    "Split": "workbench.data",
    "load_data": "workbench.data",
    "list_datasets": "workbench.data",
    "Model": "workbench.models",
    "Block": "workbench.models",
    "ImagePreprocess": "workbench.models",
    "TextPreprocess": "workbench.models",
    "load_backbone": "workbench.models",
    "list_backbones": "workbench.models",
    "last": "workbench.train.freezing",
    "progressive": "workbench.train.freezing",
    "Session": "workbench.train.session",
    "TrainConfig": "workbench.train.config",
    "Schedule": "workbench.train.optim",
    "Augment": "workbench.data.transforms",
    "Predictions": "workbench.train.records",
    "EpochResult": "workbench.train.records",
    "ErrorAnalysis": "workbench.analysis",
    "explain": "workbench.analysis",
    "explain_many": "workbench.analysis",
    "Attribution": "workbench.analysis",
    "compare": "workbench.analysis.compare",
    "Comparison": "workbench.analysis.compare",
    "load_exported": "workbench.models.export",
    "Predicted": "workbench.models.export",
    "describe_backbones": "workbench.models.catalog",
    "BackbonePicker": "workbench.widgets",
    "ErrorExplorer": "workbench.widgets",
    "FreezePanel": "workbench.widgets",
    "TrainingDashboard": "workbench.widgets",
    "Workbench": "workbench.widgets",
    "follow": "workbench.widgets.follow",
    "RunLog": "workbench.train.runlog",
    "run_recipe": "workbench.train.launch",
    "WhyPanel": "workbench.widgets.why",
    "LabelIssuesView": "workbench.widgets.issues",
    "DataMap": "workbench.widgets.datamap",
    "CompareView": "workbench.widgets.compare",
    "TrainingDynamics": "workbench.train.dynamics",
    "DynamicsMap": "workbench.analysis.dynamics",
    "DynamicsMapView": "workbench.widgets.dynamics_map",
    "VerifyQueueView": "workbench.widgets.verify",
    "EpochScrubber": "workbench.widgets.scrubber",
    "rank_backbones": "workbench.analysis.choose",
    "Candidate": "workbench.analysis.choose",
    "BackboneRanking": "workbench.analysis.choose",
    "logme": "workbench.analysis.logme",
    "sweep": "workbench.train.sweep",
    "Sweep": "workbench.train.sweep",
    "ChooseView": "workbench.widgets.choose",
    "SweepView": "workbench.widgets.sweep",
    "feature_cache_info": "workbench.train.disk_cache",
    "clear_feature_cache": "workbench.train.disk_cache",
    "Distillation": "workbench.train.distil",
    "Compressed": "workbench.models.compress",
    "DistilCompressView": "workbench.widgets.distil_compress",
}

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DataNotFoundError",
    "HubUnavailableError",
    "MissingDependencyError",
    "TrainingError",
    "WorkbenchError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name == "plots":  # the figures module, for reports and notebooks
        return importlib.import_module("workbench.plots")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: the next access is a plain attribute lookup
    _flush_denormals()
    return value


def _flush_denormals() -> None:
    """Flush denormal floats to zero once torch is loaded, before it starts its thread pool.

    Measured here: denormals made the same CPU epoch 35x slower (0.6 s -> 22 s). The flag lives
    in each thread's MXCSR and new threads inherit it, so it must be set before torch's OpenMP
    workers exist; the Session sets it again in whichever thread trains.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_flush_denormal(True)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
