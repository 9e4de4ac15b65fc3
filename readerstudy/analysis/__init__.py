"""The reader study's statistics: κ of each reader and of the model against the truth, their
bootstrap intervals and noninferiority verdicts (``readers``, ``verdicts``), and the OR-DBM MRMC
analysis (``mrmc``). Pure Python and NumPy/SciPy, no Django: tests and benchmarks run them alone."""
