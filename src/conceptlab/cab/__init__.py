"""Concept association bias (``conceptlab cab``): the measure and its offline probe."""
