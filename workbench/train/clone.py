"""session.clone(): a new run that starts where this one stands, with some settings changed.

A sweep's trials, "the same run with another LR", a branch to try something without losing the
original: each is a clone. The clone gets its own model (rebuilt by name, then given this session's
weights), the same settings, freeze plan, history and recording, then the changed settings through
`configure` (so they are recorded and `to_code()` replays the clone). When the body below the head
is the same, the clone reads this session's cached features (the tensors are shared and never
written in place), so a head-only clone trains at once instead of recomputing them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .session import Session


class CloneMixin:
    """Session.clone (a mixin of Session, session.py)."""

    def clone(self, name: str | None = None, **settings: Any) -> Session:
        """A new session with this one's weights, settings, freeze plan, history and recording,
        then `settings` applied (validated first: a bad one raises before anything is built).
        Named `name` (default: the next "run N"); it is listed with this kernel's runs."""
        from ..models import load_backbone
        from .session import Session

        self.config.replace(**settings)  # refused here, before anything is built
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"name must be a string (how the run is shown in comparisons), got {name!r}.")
        recipe = self.model.recipe
        if not self.model.rebuildable or not recipe:
            raise ConfigError(
                f"{self.model.name} was built from your own module, so it cannot be rebuilt for a clone. Build the "
                "new session yourself (wb.Session(data, wb.Model.from_module(...), ...)); a sweep takes a function "
                "that does it: wb.sweep(lambda params: wb.Session(data, make_model(), **params), space)."
            )
        if self.running:
            raise ConfigError(f"Cannot clone while {self.control.holder}; stop or wait for it to end.")
        state = self.state_dict()
        kwargs = dict(recipe.get("kwargs", {}))
        kwargs["pretrained"] = False  # the weights come from this session's state, not from the hub
        model = load_backbone(*recipe["args"], **kwargs)
        model.recipe, model.weights = recipe, self.model.weights
        other = Session(self.data, model, freeze=self._freeze_spec, name=name)
        own_name = other.name
        other.load_state_dict(state)  # (it takes this session's name too)
        other.name = own_name
        # the same weights below the head: the same cache key (train/epoch.py, _features) holds
        other._body_version = self._body_version
        other.cache = self.cache.copy()
        if settings:
            other.configure(**settings)
        return other
