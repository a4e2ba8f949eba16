"""Checks of conceptlab's own judges: the audit run on planted models with known answers
(``planted_audit``)."""
