"""Tiny randomly initialised Hugging Face dual encoders (CLIP, SigLIP) saved with
``save_pretrained``, for tests of the ``hf:`` encoder family (no download)."""

from __future__ import annotations

from pathlib import Path

import torch


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-character table (so a byte-level BPE vocabulary covers any text)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
          *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def save_tiny_dual(root: Path) -> dict[str, str]:
    """Write tiny random CLIP and SigLIP folders under ``root``; their paths by kind."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTokenizer,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        SiglipProcessor,
    )

    chars = list(_bytes_to_unicode().values())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(c, len(vocab))
    tok = CLIPTokenizer(vocab=vocab, merges=[])
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37,
            "num_hidden_layers": 2, "num_attention_heads": 2, "max_position_embeddings": 24,
            "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1}
    vision = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 37,
              "num_hidden_layers": 2, "num_attention_heads": 2}
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
              ).save_pretrained(root / "clip")
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                     crop_size={"height": 32, "width": 32}),
                  tokenizer=tok).save_pretrained(root / "clip")
    siglip = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    siglip.save_pretrained(root / "siglip")
    SiglipProcessor(image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}),
                    tokenizer=tok).save_pretrained(root / "siglip")
    return {"clip": str(root / "clip"), "siglip": str(root / "siglip")}
