"""The proxies of the zero-cost prior: the registry and the names config accepts agree."""

from __future__ import annotations

from bayesnas.config.search import PRIOR_PROXIES
from bayesnas.priors.proxies import PROXIES


def test_config_accepts_exactly_the_registered_proxies() -> None:
    assert tuple(PROXIES) == PRIOR_PROXIES
