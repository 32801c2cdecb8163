"""The `file` source: a local table, `--dataset path/to/file.{parquet,csv,npz}`.
(A parquet of images is `images.py`'s.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from noisebench.data.cards import _clip, _is_file
from noisebench.data.schema import LABEL_COLUMN, Card
from noisebench.data.validate import _column_values, _columns
from noisebench.errors import UserError


def _load_file(card: Card):
    path = Path(card.options["path"])
    if not _is_file(path):
        raise UserError(f"data file not found: {_clip(str(path), 500)}")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                xk = next((k for k in ("x", "X", "features") if k in arrays), None)
                yk = next((k for k in ("label", "y", "labels") if k in arrays), None)
                if xk is None or yk is None:
                    raise UserError(
                        f"{path}: an .npz needs arrays 'x' and 'label' (has {', '.join(arrays)})"
                    )
                return arrays[xk], arrays[yk], None
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path)
        names = table.column_names
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise UserError(f"{path}: duplicate column names {', '.join(twice)}")
        columns = {name: _column_values(table.column(name)) for name in names}
    except UserError:
        raise
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"cannot read {path}: {type(err).__name__}: {err}") from None
    x, y = _columns(card, columns, LABEL_COLUMN, None)
    return x, y, None
