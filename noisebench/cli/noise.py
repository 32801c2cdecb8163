"""`noisebench noise show|export`: look at a noise model, or hand its exact draw to other code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from noisebench.cli import options
from noisebench.errors import UserError

app = typer.Typer(help="Inspect and export label noise.", no_args_is_help=True)

NoiseSeed = Annotated[int, typer.Option("--noise-seed", help="Which realization.")]
ValFraction = Annotated[
    float,
    typer.Option("--val-fraction", help="Noisy validation share (as in evaluate)."),
]


def _draw(opts: options.NoiseOptions, noise_seed: int, val_fraction: float):
    """(the spec as records state it, the dataset, the nominal T, the NoiseDraw)."""
    from noisebench.data import load_dataset, resolve_card
    from noisebench.experiment import draw_member

    if not 0 < val_fraction < 1:
        raise UserError(f"--val-fraction must lie in (0, 1), got {val_fraction:g}")
    ds = load_dataset(resolve_card(opts.dataset))
    # the spec as records state it: a transition's rate from T, human noise's from its
    # labels; instance noise's T is the expected one, each draw has its own
    spec, t, fixed = opts.noise_spec().realize(ds)
    draw = draw_member(ds, spec, t, noise_seed, val_fraction, labels=fixed)
    return spec, ds, t, draw


@app.command("show")
@options.with_options(options.NoiseOptions)
def show(
    opts: options.NoiseOptions,
    noise_seed: NoiseSeed = 0,
    val_fraction: ValFraction = 0.1,
    as_json: options.Json = False,
) -> None:
    """Print the nominal transition matrix T and the realized one (row-normalized counts).
    For human noise both are the T its labels realize. For instance noise the nominal T
    is the expected one over its draws, and this draw's own T (the per-class mean of its
    per-sample rows, what methods that require T get) is shown between the two."""
    import numpy as np

    from noisebench.noise import confusion, realized_rate

    spec, ds, t, draw = _draw(opts, noise_seed, val_fraction)
    noisy = draw.noisy
    counts = confusion(ds.y, noisy, ds.num_classes)
    realized = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    rate = realized_rate(ds.y, noisy)
    if as_json:
        print(
            options.dumps(
                {
                    "spec": spec.as_dict(),
                    "dataset": ds.name,
                    "noise_seed": noise_seed,
                    "nominal": t.tolist(),
                    # the oracle T of this draw (instance noise: its own; else nominal)
                    "draw": draw.transition.tolist(),
                    "realized": realized.tolist(),
                    "counts": counts.tolist(),
                    "realized_rate": rate,
                }
            )
        )
        return
    from rich import box
    from rich.table import Table

    console = options.stdout_console()
    matrices = [("nominal T", t), ("realized T (counts / class size)", realized)]
    if spec.kind == "instance":
        matrices[:1] = [
            ("expected T (over the draws of W and q)", t),
            ("this draw's T (mean per-sample row per class)", draw.transition),
        ]
    for title, matrix in matrices:
        table = Table(
            title=f"{ds.name}, {spec.kind} {spec.rate:g} ({spec.mode}): {title}",
            caption="rows: clean class i; columns: noisy class j",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
        )
        table.add_column("i\\j")
        for j in range(ds.num_classes):
            table.add_column(str(j), justify="right", no_wrap=True)
        for i, row in enumerate(matrix):
            table.add_row(str(i), *(f"{v:.2f}" if v else "." for v in row))
        console.print(table)
    console.print(
        f"realized flip rate {rate:.4f} over {ds.y.size} training-pool labels (noise seed {noise_seed})"
    )


@app.command("export")
@options.with_options(options.NoiseOptions)
def export(
    opts: options.NoiseOptions,
    out: Annotated[Path, typer.Option("--out", help="Where to write the .npz.")],
    noise_seed: NoiseSeed = 0,
    val_fraction: ValFraction = 0.1,
) -> None:
    """Write the exact corruption (features, clean and noisy labels, split, T, spec) to an
    .npz. For instance noise, T is this draw's own (the oracle methods get), and
    `rows` holds each training-pool sample's row of T(x)."""
    import os

    import numpy as np

    if out.suffix != ".npz":
        raise UserError(f"--out must end in .npz, got '{out.name}'")
    spec, ds, t, draw = _draw(opts, noise_seed, val_fraction)
    noisy, train, val = draw.noisy, draw.train, draw.val
    meta = {
        "dataset": ds.name,
        "dataset_sha": ds.sha,
        "noise": spec.as_dict(),
        "noise_seed": noise_seed,
        "val_fraction": val_fraction,
    }
    extra = {}
    if draw.rows is not None:
        from noisebench.instance import STD

        meta["instance"] = {"std": STD, "nominal_transition": t.tolist()}
        extra["rows"] = draw.rows
    tmp = out.with_name(f".{out.name}.tmp.npz")
    try:
        np.savez_compressed(
            tmp,
            x=ds.x,
            clean=ds.y,
            noisy=noisy,
            train_idx=train,
            val_idx=val,
            x_test=ds.x_test,
            y_test=ds.y_test,
            transition=draw.transition,
            spec=np.array(json.dumps(meta)),
            **extra,
        )
        os.replace(tmp, out)
    except OSError as err:
        raise UserError(f"cannot write {out}: {err.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    options.stderr_console().print(
        f"wrote {out}: {noisy.size} labels, {int((noisy != ds.y).sum())} corrupted"
    )
