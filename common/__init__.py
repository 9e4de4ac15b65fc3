"""Code every app may use. Pure Python for now: no models and no Django imports, so that ``ml.core``
(which imports no Django) can use it too. DESIGN.md plans roles, queueing, health and storage here."""
