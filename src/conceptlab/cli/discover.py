"""Concept discovery: ``discover``, ``importance``, ``hook-points`` and ``concepts apply``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli.common import (
    DATA_HELP,
    CacheOpt,
    DataSetOpt,
    EncoderSetOpt,
    JsonOpt,
    SeedOpt,
    answer,
    cache_dir,
    call,
    encoder_specs,
    names_help,
    parse_options,
    print_json,
    print_table,
    wrote,
)
from conceptlab.discover.base import known_dictionaries
from conceptlab.discover.naming import DEFAULT_NAMING, NAMING_VOCABULARIES
from conceptlab.workflows import discover as wf

#: ``discover --method``: the registered dictionary methods
DICTIONARY_HELP = names_help(known_dictionaries())
#: ``--encoder`` of discover and hook-points: any registered family that runs a torch network
TAPPED_ENCODER_HELP = ("image encoder spec whose network is tapped (a family that runs a "
                       "torch network): " + encoder_specs())

concepts_app = typer.Typer(no_args_is_help=True, help="Use discovered concept banks.")


def discover(
    data: Annotated[str, typer.Option("--data", help="an image " + DATA_HELP)
                    ] = "fashion-mnist",
    method: Annotated[str, typer.Option("--method", help=DICTIONARY_HELP)] = "nmf",
    k: Annotated[int, typer.Option("--k", min=1, help="concepts per class")] = 10,
    encoder: Annotated[str, typer.Option(
        "--encoder", "--model", help=TAPPED_ENCODER_HELP)
    ] = "efficientnet",
    layer: Annotated[str | None, typer.Option("--layer", help="hook point (default: the "
                                              "model's last feature map, 'features')")] = None,
    out: Annotated[Path, typer.Option("--out", help="output folder")] = Path("runs/discover"),
    n_per_class: Annotated[int, typer.Option("--n-per-class", min=1)] = 100,
    n_crops: Annotated[int, typer.Option("--n-crops", min=1, help="random crops per image")] = 8,
    source: Annotated[str, typer.Option("--source", help="crops (CRAFT) | spatial (each "
                                        "position of the map a row)")] = "crops",
    image_size: Annotated[int, typer.Option(
        "--image-size", min=8, help="input side for encoders that take one (an -E "
        "image_size wins; ignored by families with a fixed processor, e.g. hf:)")] = 128,
    patch_size: Annotated[int | None, typer.Option(
        "--patch-size", min=4, help="--method craft: grid patch side (default 64/224 of the "
        "input)")] = None,
    naming: Annotated[str, typer.Option(
        "--naming", help=" | ".join(NAMING_VOCABULARIES) + ": the vocabulary concepts are "
        "named from")] = DEFAULT_NAMING,
    encoder_option: EncoderSetOpt = None,
    classes: Annotated[list[str] | None, typer.Option("--class", help="only these classes")]
    = None,
    seed: SeedOpt = 0, cache: CacheOpt = None, data_option: DataSetOpt = None,
    method_option: Annotated[list[str] | None, typer.Option(
        "--set", help="method option KEY=VALUE (e.g. l1=0.05, k=4)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Discover concepts per class from random crops (CRAFT) or map positions; banks, names,
    a gallery."""
    data_opts = call(lambda: parse_options(data_option, "--data-option"))
    method_opts = call(lambda: parse_options(method_option, "--set"))
    encoder_opts = call(lambda: parse_options(encoder_option, "--encoder-option"))
    m = call(lambda: wf.run_discover(
        data, out, method=method, k=k, encoder=encoder, layer=layer, image_size=image_size,
        n_per_class=n_per_class, n_crops=n_crops, classes=classes, seed=seed,
        cache_dir=cache_dir(cache), data_options=data_opts, method_options=method_opts,
        source=source, encoder_options=encoder_opts, naming=naming, patch_size=patch_size))
    vocabulary = (m.get("naming") or {}).get("option", naming)
    answer(m, as_json, lambda: print_table(
        f"{method}, k={k} at {m['layer']}",
        ["class", "rel. error", "R²", "dead", f"concepts (names from {vocabulary})"],
        [[cls, r["quality"]["relative_error"], r["quality"]["r2"], r["quality"]["dead_units"],
          ", ".join(c["concept"] for c in r["concepts"][:4]) + " ..."]
         for cls, r in m["per_class"].items()]), out)


def importance(
    folder: Annotated[Path, typer.Argument(help="folder written by `discover`")],
    class_name: Annotated[str, typer.Option("--class", help="class to explain")],
    n_images: Annotated[int, typer.Option("--n-images", min=1, help="held-out images")] = 30,
    methods: Annotated[list[str] | None, typer.Option(
        "--method", help=names_help(wf.IMPORTANCE.names()) + " (default all)")] = None,
    n_design: Annotated[int, typer.Option("--n-design", min=2, help="Sobol QMC design size")
                        ] = 32,
    seed: Annotated[int | None, typer.Option("--seed", min=0)] = None,
    baseline: Annotated[str, typer.Option(
        "--baseline", help="what a removed concept becomes: zero (its codes set to 0) | "
        "resample (codes drawn from other images, Sobol's own perturbation)")] = "zero",
    cache: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Concept importance for one class (Sobol, gradient x input, occlusion) + fidelity."""
    r = call(lambda: wf.run_importance(
        folder, class_name, n_images=n_images,
        methods=tuple(methods) if methods else tuple(wf.IMPORTANCE), seed=seed,
        n_design=n_design, cache_dir=cache_dir(cache), baseline=baseline))
    answer(r, as_json, lambda: print_table(
        f"{r['class']}: fidelity of each ranking ({r['n_images']} test images)",
        ["order", "deletion AUC (low)", "insertion AUC (high)", "mu-fidelity", "top concept"],
        [[m, f["deletion_auc"], f["insertion_auc"], f["mu_fidelity"],
          r["ranking"].get(m, ["-"])[0]] for m, f in r["fidelity"].items()]))
    for p in r["pngs"]:
        wrote(p)


def hook_points(
    encoder: Annotated[str, typer.Option("--encoder", help=TAPPED_ENCODER_HELP)
                       ] = "efficientnet",
    encoder_option: EncoderSetOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The hook points (``--layer`` values) of an encoder's network, input to output."""
    from conceptlab.encoders.base import build_encoder

    opts = call(lambda: parse_options(encoder_option, "--encoder-option"))
    points = call(lambda: build_encoder(encoder, **opts).hook_points())
    if as_json:
        print_json(points)
    else:
        for p in points:
            typer.echo(p)


@concepts_app.command("apply")
def apply(
    bank: Annotated[Path, typer.Argument(help="a class folder: DIR/concepts/<class>")],
    input: Annotated[list[Path], typer.Option("--input", help="image file")],
) -> None:
    """Codes of new images under a discovered bank (strongest first), as JSON."""
    from conceptlab.data.folder import open_image

    def job() -> list[dict[str, object]]:
        rows = wf.apply_concepts(bank, [open_image(p) for p in input])
        for p, row in zip(input, rows, strict=True):
            row["input"] = str(p)
        return rows

    print_json(call(job))


def register(app: typer.Typer) -> None:
    """Add ``discover``, ``importance`` and the ``concepts`` group."""
    app.command()(discover)
    app.command()(importance)
    app.command("hook-points")(hook_points)
    app.add_typer(concepts_app, name="concepts")
