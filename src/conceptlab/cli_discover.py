"""Commands for concept discovery: `discover`, `importance` and `concepts apply` (thin: each
parses, calls ``conceptlab.workflows.discover``, prints)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from conceptlab.workflows import discover as wf

console = Console(stderr=True)
concepts_app = typer.Typer(no_args_is_help=True, help="Use discovered concept banks.")
ERRORS = (ValueError, RuntimeError, FileNotFoundError, KeyError)


def _fail(err: Exception) -> None:
    console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True)
    if os.environ.get("CONCEPTLAB_DEBUG"):
        raise err
    raise typer.Exit(code=2)


def _options(pairs: list[str] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def discover(
    data: Annotated[str, typer.Option("--data", help="an image data spec (fashion-mnist, "
                                      "folder:PATH, ...)")] = "fashion-mnist",
    method: Annotated[str, typer.Option("--method", help="nmf | seminmf | pca | ica | kmeans | "
                                        "sae | topk-sae | batchtopk-sae")] = "nmf",
    k: Annotated[int, typer.Option("--k", help="concepts per class")] = 10,
    model: Annotated[str, typer.Option("--model", help="model spec")] = "efficientnet",
    layer: Annotated[str | None, typer.Option("--layer", help="hook point (default: the "
                                              "model's last feature map, 'features')")] = None,
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("runs/discover"),
    n_per_class: Annotated[int, typer.Option("--n-per-class")] = 100,
    n_crops: Annotated[int, typer.Option("--n-crops", help="random crops per image")] = 8,
    source: Annotated[str, typer.Option("--source", help="crops (CRAFT) | spatial (each "
                                        "position of the map a row)")] = "crops",
    image_size: Annotated[int, typer.Option("--image-size")] = 128,
    classes: Annotated[list[str] | None, typer.Option("--class", help="only these classes")]
    = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    cache: Annotated[Path | None, typer.Option("--cache")] = None,
    data_option: Annotated[list[str] | None, typer.Option("--data-option", "-D")] = None,
    method_option: Annotated[list[str] | None, typer.Option(
        "--set", help="method option KEY=VALUE (e.g. l1=0.05, k=4)")] = None,
) -> None:
    """Discover concepts per class from random crops (CRAFT) or map positions; banks, names,
    a gallery."""
    try:
        m = wf.run_discover(data, out, method=method, k=k, model=model, layer=layer,
                            image_size=image_size, n_per_class=n_per_class, n_crops=n_crops,
                            classes=classes, seed=seed, cache_dir=str(cache) if cache else None,
                            data_options=_options(data_option),
                            method_options=_options(method_option), source=source)
    except ERRORS as err:
        _fail(err)
    table = Table(title=escape(f"{method}, k={k} at {m['layer']}"))
    for col in ("class", "rel. error", "R²", "dead", "concepts (head names)"):
        table.add_column(col)
    for cls, r in m["per_class"].items():
        q = r["quality"]
        table.add_row(escape(cls), f"{q['relative_error']:.3f}", f"{q['r2']:.3f}",
                      str(q["dead_units"]),
                      escape(", ".join(c["concept"] for c in r["concepts"][:4]) + " ..."))
    Console().print(table)
    console.print(f"wrote {escape(str(out / 'metrics.json'))}", soft_wrap=True)


def importance(
    folder: Annotated[Path, typer.Argument(help="folder written by `discover`")],
    class_name: Annotated[str, typer.Option("--class", help="class to explain")],
    n_images: Annotated[int, typer.Option("--n-images", help="held-out images")] = 30,
    methods: Annotated[list[str] | None, typer.Option(
        "--method", help="sobol | gradient_input | occlusion (default all)")] = None,
    n_design: Annotated[int, typer.Option("--n-design", help="Sobol QMC design size")] = 32,
    seed: Annotated[int | None, typer.Option("--seed")] = None,
    cache: Annotated[Path | None, typer.Option("--cache")] = None,
) -> None:
    """Concept importance for one class (Sobol, gradient x input, occlusion) + fidelity."""
    try:
        r = wf.run_importance(folder, class_name, n_images=n_images,
                              methods=tuple(methods) if methods else tuple(wf.IMPORTANCE),
                              seed=seed, n_design=n_design,
                              cache_dir=str(cache) if cache else None)
    except ERRORS as err:
        _fail(err)
    table = Table(title=escape(f"{r['class']}: fidelity of each ranking ({r['n_images']} "
                               "test images)"))
    for col in ("order", "deletion AUC (low)", "insertion AUC (high)", "mu-fidelity",
                "top concept"):
        table.add_column(col)
    for m, f in r["fidelity"].items():
        top = r["ranking"].get(m, ["-"])[0]
        table.add_row(m, f"{f['deletion_auc']:.3f}", f"{f['insertion_auc']:.3f}",
                      f"{f['mu_fidelity']:.3f}", escape(top))
    Console().print(table)
    for p in r["pngs"]:
        console.print(f"wrote {escape(p)}", soft_wrap=True)


@concepts_app.command("apply")
def apply(
    bank: Annotated[Path, typer.Argument(help="a class folder: DIR/concepts/<class>")],
    input: Annotated[list[Path], typer.Option("--input", help="image file")],
) -> None:
    """Codes of new images under a discovered bank (strongest first), as JSON."""
    from conceptlab.data.folder import open_image

    try:
        images = [open_image(p) for p in input]
        rows = wf.apply_concepts(bank, images)
    except ERRORS as err:
        _fail(err)
    for p, row in zip(input, rows, strict=True):
        row["input"] = str(p)
    typer.echo(json.dumps(rows, indent=2))
