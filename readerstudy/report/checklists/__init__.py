"""The study's reporting checklist (STARD-AI) as data; CLAIM and TRIPOD+AI live in ``ml.core.checklists``."""
