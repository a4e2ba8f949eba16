"""Encoders: adapters that turn images or texts into vectors, behind one protocol (see base.py)."""

from conceptlab.encoders.base import Encoder, EncoderError, build_encoder, known_encoders

__all__ = ["Encoder", "EncoderError", "build_encoder", "known_encoders"]
