"""Concept vectors in causal language models: the adapter and hook points (``model``), labelled
prompts (``datasets``), layer-wise probing (``probing``), neuron decoding through the head
(``neurons``), directions (``directions``), edits (``edits``), their side effects
(``effects``), parametric concept vectors (``parametric``) and observables (``observables``)."""
