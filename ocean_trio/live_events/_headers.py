"""``mask_headers``: a webhook's headers fit to show (the admin API, the live page).

Signature and credential headers are what a reader could replay or forge with; their values
are replaced, their names kept so the reader sees what was sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

MASK = "***"

_SENSITIVE = re.compile(
    r"authorization|cookie|signature|token|secret|password|api-?key|hmac|x-hub-sig|credential",
    re.IGNORECASE,
)


def is_sensitive(name: str) -> bool:
    """Whether header ``name`` carries a signature or a credential."""
    return _SENSITIVE.search(name) is not None


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the values of sensitive ones replaced by ``***``."""
    return {name: MASK if is_sensitive(name) else value for name, value in headers.items()}
