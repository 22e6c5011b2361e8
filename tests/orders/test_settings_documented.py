"""`.env.example` documents every setting the service reads."""

import re
from pathlib import Path

from pydantic import BaseModel

from orders.settings import OrdersSettings


def variables(model: type[BaseModel], prefix: str) -> set[str]:
    names: set[str] = set()
    for name, field in model.model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            names |= variables(nested, f"{prefix}{name.upper()}__")
        else:
            names.add(prefix + name.upper())
    return names


def test_env_example_names_every_setting_and_nothing_else() -> None:
    text = Path(".env.example").read_text()
    documented = set(re.findall(r"^#? ?(ORDERS_[A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert documented == variables(OrdersSettings, "ORDERS_")
