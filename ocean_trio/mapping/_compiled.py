"""``CompiledPortAppConfig``: a port app config with every resource's mapper compiled once."""

from __future__ import annotations

import attrs

from ..catalog._changes import WriteOptions
from ._mapper import ResourceMapper
from ._models import PortAppConfig


@attrs.frozen
class CompiledPortAppConfig:
    """The mapping in force; replaced as a whole when the config changes, never mutated."""

    config: PortAppConfig
    mappers: tuple[ResourceMapper, ...]
    options: WriteOptions

    @classmethod
    def compile(cls, config: PortAppConfig, *, allow_env: bool = True) -> CompiledPortAppConfig:
        """Compile every resource; raises ``MappingError`` naming the first invalid expression."""
        mappers = tuple(
            ResourceMapper(resource, index=i, allow_env=allow_env)
            for i, resource in enumerate(config.resources)
        )
        return cls(config, mappers, WriteOptions.from_config(config))

    def mappers_of_kind(self, kind: str) -> list[ResourceMapper]:
        return [m for m in self.mappers if m.kind == kind]
