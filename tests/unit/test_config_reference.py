"""docs/configuration.md is the one reference of every option, and cannot drift (issue 16.6).

It is generated from the settings models (``devtools.config_reference``); these tests fail when
the committed file differs from what the code says, or when any field of any settings model
is missing from it (checked by reading the models here, not through the generator's walk).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel

import agent.config
import broker.config
from agent.settings_env import options
from devtools.config_reference import REFERENCE, render

SETTINGS_MODULES = (agent.config, broker.config)


def settings_models() -> Iterator[type[BaseModel]]:
    for module in SETTINGS_MODULES:
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, BaseModel):
                yield value


def is_section(annotation: Any) -> bool:
    """A field holding a model (``[keys]``, ``[webhook]``): a heading, not a row."""
    if get_origin(annotation) is tuple:
        return False
    candidates = (annotation, *get_args(annotation))
    return any(isinstance(c, type) and issubclass(c, BaseModel) for c in candidates)


def keys_in_reference() -> set[str]:
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", REFERENCE.read_text(), re.MULTILINE))


class TestConfigurationReference:
    def test_the_committed_reference_is_the_generated_one(self) -> None:
        """Regenerate with: python -m devtools.config_reference > docs/configuration.md."""
        assert REFERENCE.read_text() == render()

    @pytest.mark.parametrize("model", list(settings_models()), ids=lambda m: m.__name__)
    def test_every_field_of_a_settings_model_has_a_row(self, model: type[BaseModel]) -> None:
        """Each field of each settings model in agent.config and broker.config is listed."""
        wanted = {n for n, f in model.model_fields.items() if not is_section(f.annotation)}
        assert wanted - keys_in_reference() == set()

    def test_every_agent_option_has_its_variable_in_the_reference(self) -> None:
        """Each agent.toml option's ISA_AGENT__ variable appears in the reference."""
        text = REFERENCE.read_text()
        missing = [o.env for o in options(agent.config.Settings) if o.env and o.env not in text]
        assert missing == []
