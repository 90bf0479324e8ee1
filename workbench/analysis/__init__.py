"""Pure functions and data objects over predictions (headless).

Captum and cleanlab are imported when an explanation or a label-issue ranking is first asked for
(Captum's package imports matplotlib, so it never loads with this package).
"""

from .attribution import Attribution, explain, explain_many
from .embedding import Embedding
from .errors import ErrorAnalysis, Flips

__all__ = ["Attribution", "Embedding", "ErrorAnalysis", "Flips", "explain", "explain_many"]
