"""The `mnist1d` source: MNIST-1D generated offline by the mnist1d package.

`from mnist1d...` below is an absolute import: it is the mnist1d package, never this
module.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from noisebench.data.cache import _read_cache, _write_cache, cache_dir
from noisebench.data.schema import Card
from noisebench.errors import UserError


def _load_mnist1d(card: Card):
    """MNIST-1D (Greydanus 2020), generated offline by the mnist1d package's
    `make_dataset()` (never its pickled download) and cached as .npz. Its own 80/20
    train/test split gives the clean test set. `make_dataset` seeds numpy's global
    generator, so that generator's state is put back afterwards."""
    from importlib.metadata import version

    try:
        from mnist1d.data import get_dataset_args, make_dataset
        from mnist1d.utils import ObjectView
    except ImportError:
        raise UserError(
            "the mnist1d card needs the mnist1d package: pip install 'noisebench[mnist1d]'"
        ) from None
    args = get_dataset_args(as_dict=True)
    args |= {k: card.options[k] for k in ("num_samples", "seed") if k in card.options}
    args.pop("url", None)
    key = json.dumps(args, sort_keys=True) + version("mnist1d")
    cached = (
        cache_dir() / f"{card.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.npz"
    )
    hit = _read_cache(cached)
    if hit is None:
        state = np.random.get_state()
        try:
            data = make_dataset(ObjectView(args))
        finally:
            np.random.set_state(state)
        hit = (
            np.concatenate([data["x"], data["x_test"]]),
            np.concatenate([data["y"], data["y_test"]]),
        )
        _write_cache(cached, x=hit[0], y=hit[1])
    x, y = hit
    train = int(len(y) * args["train_split"])  # the package's own split
    return x[:train], y[:train], (x[train:], y[train:])
