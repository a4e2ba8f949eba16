"""``encode``, ``zeroshot`` and ``probe``: embeddings and the baselines read from them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conceptlab.cli.common import (
    TEMPLATES_HELP,
    CacheOpt,
    DataOpt,
    DataSetOpt,
    EncoderOpt,
    EncoderSetOpt,
    JsonOpt,
    NTestOpt,
    NTrainOpt,
    NValOpt,
    OutOpt,
    SeedOpt,
    answer,
    call,
    parse_options,
    print_metrics,
    run_config,
)


def encode(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None,
           out: OutOpt = Path("runs/encode"),
           n_train: NTrainOpt = None, n_val: NValOpt = None, n_test: NTestOpt = None,
           seed: SeedOpt = 0, cache: CacheOpt = None, encoder_option: EncoderSetOpt = None,
           data_option: DataSetOpt = None,
           engine: Annotated[str, typer.Option(
               "--engine", help="local (this process) | ray (Ray Data pipeline)")] = "local",
           address: Annotated[str | None, typer.Option(
               "--address", help="Ray cluster address (default: start a local Ray)")] = None,
           engine_option: Annotated[list[str] | None, typer.Option(
               "--engine-option", help="ray engine option KEY=VALUE (num_cpus, num_gpus, "
               "concurrency, batch_size)")] = None,
           as_json: JsonOpt = False) -> None:
    """Encode train/val/test into the activation cache (a second run reads it)."""
    from conceptlab.workflows import run_encode

    cfg = call(lambda: run_config(data, encoder, n_train, n_val, n_test, seed, cache,
                                  encoder_option, data_option))
    options = call(lambda: parse_options(engine_option, "--engine-option"))
    metrics = call(lambda: run_encode(cfg, out, engine=engine, address=address,
                                      engine_options=options))
    answer(metrics, as_json, lambda: print_metrics(metrics, ["encoder", "data", "dim",
                                                             "seconds"]), out)


def zeroshot(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None,
             out: OutOpt = Path("runs/zeroshot"), templates: Annotated[str, typer.Option(
                 "--templates", help=TEMPLATES_HELP)] = "plain",
             n_test: NTestOpt = None, seed: SeedOpt = 0, cache: CacheOpt = None,
             encoder_option: EncoderSetOpt = None, data_option: DataSetOpt = None,
             as_json: JsonOpt = False) -> None:
    """Zero-shot classification of the test split with class-name prompts."""
    from conceptlab.workflows import run_zeroshot

    cfg = call(lambda: run_config(data, encoder, None, None, n_test, seed, cache,
                                  encoder_option, data_option))
    metrics = call(lambda: run_zeroshot(cfg, out, templates=templates))
    answer(metrics, as_json, lambda: print_metrics(
        metrics, ["accuracy", "n_test", "encoder", "data", "templates", "seconds"]), out)


def probe(data: DataOpt = "fashion-mnist", encoder: EncoderOpt = None,
          out: OutOpt = Path("runs/probe"),
          n_train: NTrainOpt = None, n_val: NValOpt = None, n_test: NTestOpt = None,
          seed: SeedOpt = 0, cache: CacheOpt = None, encoder_option: EncoderSetOpt = None,
          data_option: DataSetOpt = None, as_json: JsonOpt = False) -> None:
    """Linear probe on cached embeddings (and on backbone features, for ConSE)."""
    from conceptlab.workflows import run_probe

    cfg = call(lambda: run_config(data, encoder, n_train, n_val, n_test, seed, cache,
                                  encoder_option, data_option))
    metrics = call(lambda: run_probe(cfg, out))
    answer(metrics, as_json, lambda: print_metrics(
        metrics, ["accuracy", "accuracy_backbone_features", "n_train", "n_test", "encoder",
                  "data", "seconds"]), out)


def register(app: typer.Typer) -> None:
    """Add ``encode``, ``zeroshot`` and ``probe``."""
    app.command()(encode)
    app.command()(zeroshot)
    app.command()(probe)
