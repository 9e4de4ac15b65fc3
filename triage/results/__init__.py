"""Results back to the PACS: a DICOM SR (TID 1500) and a heatmap overlay (secondary capture) per
reading, referencing the original study (``reading``, ``sr``, ``overlay``), and their sending to
a C-STORE AE or a STOW-RS URL (``sending``). Guide: docs/operations/results-to-pacs.md"""
