"""The base of every settings section.

In a module of its own so the sections can live in several modules
(:mod:`app.config.schema`, :mod:`app.config.sessions_schema`) with one set of rules:
an unknown key is an error (a typo must not silently keep the default), and a value
assigned to a field is validated like a loaded one.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Section"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
