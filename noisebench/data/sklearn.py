"""The `sklearn` source: a scikit-learn `load_*`/`fetch_*` function's (X, y).

`import sklearn.datasets` below is an absolute import: it is scikit-learn, never this
module.
"""

from __future__ import annotations

import hashlib

from noisebench.data.cache import _read_cache, _write_cache, cache_dir
from noisebench.data.schema import Card
from noisebench.errors import UserError


def _load_sklearn(card: Card):
    """A scikit-learn loader's (X, y), cached as .npz: importing sklearn alone takes about
    a second, more than a small training run."""
    from importlib.metadata import version

    loader = card.options.get("loader", "")
    key = f"{loader}-sklearn{version('scikit-learn')}"
    cached = (
        cache_dir() / f"{card.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    )
    hit = _read_cache(cached)
    if hit is not None:
        return (*hit, None)
    import sklearn.datasets

    fn = getattr(sklearn.datasets, loader, None)
    if not callable(fn):
        raise UserError(
            f"dataset card {card.origin}: sklearn.datasets has no loader '{loader}'"
        )
    try:
        x, y = fn(return_X_y=True)
    except Exception as err:  # noqa: BLE001 - a loader that cannot run is the card's to fix
        raise UserError(
            f"dataset card {card.origin}: sklearn.datasets.{loader}(return_X_y=True) "
            f"failed: {type(err).__name__}: {err}"
        ) from None
    _write_cache(cached, x=x, y=y)
    return x, y, None
