"""``ocean``: the object integrations import, standing for the current ``Integration``.

Every attribute is the current integration's (``ocean.add_webhook_processor``,
``ocean.integration_config``…), plus ``ocean.asgi_app(__file__)``, the entry point for
``hypercorn --worker-class trio integrations.<name>.main:app``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._entry import IntegrationASGI
from ._integration import Integration, current_integration

if TYPE_CHECKING:
    _Base = Integration
else:
    _Base = object


class _OceanProxy(_Base):
    """Forwards every attribute to the current ``Integration``; adds ``asgi_app``."""

    def __init__(self) -> None:  # the proxy holds nothing of its own
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(current_integration(), name)

    def __dir__(self) -> Iterable[str]:
        return [*dir(current_integration()), "asgi_app"]

    def __repr__(self) -> str:
        return f"<ocean proxy for {current_integration()!r}>"

    def asgi_app(self, main_file: str | None = None) -> IntegrationASGI:
        """The ASGI app for ``hypercorn --worker-class trio integrations.<name>.main:app``.

        ``main_file`` (pass ``__file__``) locates the integration's folder: its
        ``config.yaml`` and ``.port/resources``.
        """
        integration = current_integration()
        if main_file is not None and integration.root is None:
            integration.root = Path(main_file).resolve().parent
        return IntegrationASGI(integration)


ocean = _OceanProxy()
"""The current integration (see the module docstring)."""
