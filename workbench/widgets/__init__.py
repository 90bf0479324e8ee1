"""ipywidgets views over the headless core: the only package that imports ipywidgets/IPython."""

from .dashboard import TrainingDashboard
from .explorer import ErrorExplorer
from .freeze import FreezePanel
from .picker import BackbonePicker
from .workbench import Workbench

__all__ = ["BackbonePicker", "ErrorExplorer", "FreezePanel", "TrainingDashboard", "Workbench"]
