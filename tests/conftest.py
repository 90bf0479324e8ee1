"""Suite-wide set-up."""

import torch

# Before any test builds a model: torch's worker threads inherit this (see workbench/__init__).
torch.set_flush_denormal(True)
