"""STARD-AI (diagnostic accuracy studies of AI), item by item, for the reader study.

The STARD 2015 items in their order, read for a study whose index tests are the model and the
readers, plus the AI items (A1–A4) on the readers and the model's part; short paraphrases. The
filler says what the platform writes from the study's records, None where only the authors can.
"""

from __future__ import annotations

from ml.core.checklists import Checklist, Item
from ml.core.checklists import fillers as F

STARD_AI = Checklist(
    key="stard_ai",
    title="STARD-AI: reporting a diagnostic accuracy study of AI (the reader study)",
    reference="STARD 2015 (Bossuyt et al., BMJ 2015) with the AI extension's items on readers and the model.",
    items=(
        Item("1", "Title", "Say it is a diagnostic accuracy study, with at least one measure of accuracy."),
        Item("2", "Abstract", "Structured summary of design, methods, results and conclusions."),
        Item("3", "Background", "Scientific and clinical background, intended use of the index test."),
        Item("4", "Objectives", "Study objectives and hypotheses."),
        Item("5", "Design", "Prospective or retrospective data collection."),
        Item("6", "Eligibility", "Eligibility criteria.", F.eligibility, "flow.svg"),
        Item("7", "Identification", "On what basis eligible participants were identified.", F.data_sources),
        Item("8", "Setting and dates", "Where and when participants were identified.", F.data_sources),
        Item("9", "Sampling", "Consecutive, random or convenience series.", F.reading_protocol),
        Item("10a", "Index test", "The index tests (model and readers) in enough detail to replicate.", F.model),
        Item(
            "10b", "Reference standard", "The reference standard in enough detail to replicate.", F.reference_standard
        ),
        Item("11", "Rationale", "Why this reference standard."),
        Item("12a", "Index test positivity", "Definition of a positive index test (thresholds).", F.ensembling),
        Item("12b", "Reference positivity", "Definition of a positive reference standard.", F.reference_standard),
        Item(
            "13a",
            "Index test blinding",
            "Whether readers knew the reference standard or clinical data.",
            F.reading_protocol,
        ),
        Item("13b", "Reference blinding", "Whether labellers knew the index test results.", F.proposals),
        Item("14", "Accuracy methods", "Methods for estimating and comparing accuracy.", F.statistics, "report"),
        Item("15", "Indeterminate results", "How indeterminate results were handled."),
        Item("16", "Missing data", "How missing index test or reference results were handled.", F.missing_readings),
        Item("17", "Variability", "Analyses of variability (by reader, group, subgroup).", F.labeller_agreement),
        Item("18", "Sample size", "Intended sample size and how it was decided.", F.sample_size),
        Item("19", "Flow", "Flow of participants, with a diagram.", F.flow, "flow.svg"),
        Item("20", "Characteristics", "Baseline demographic and clinical characteristics.", F.demographics),
        Item(
            "21a",
            "Severity",
            "Distribution of disease severity (classes) in those with the target condition.",
            F.split,
            "Table 1",
        ),
        Item("21b", "Other diagnoses", "Distribution of other diagnoses in those without it.", F.split, "Table 1"),
        Item("22", "Time interval", "Time between the index tests and the reference standard."),
        Item(
            "23",
            "Cross tabulation",
            "Index test results against the reference standard.",
            F.metrics,
            "confusion_matrices.png",
        ),
        Item("24", "Accuracy", "Estimates of accuracy with their precision (95% CIs).", F.metrics, "report"),
        Item("25", "Adverse events", "Adverse events from the index test or reference standard."),
        Item("26", "Limitations", "Limitations, bias, uncertainty, generalisability.", F.deviations),
        Item("27", "Implications", "Implications for practice."),
        Item("28", "Registration", "Registration number and registry."),
        Item("29", "Protocol", "Where the full protocol can be found."),
        Item("30", "Funding", "Sources of funding and the funders' role."),
        Item("A1", "Readers", "Number of readers, their training and experience.", F.readers, "report"),
        Item("A2", "Reading sessions", "Washout between sessions and randomisation of case order.", F.reading_protocol),
        Item("A3", "Reading time", "Time per case in each session.", F.reading_time),
        Item(
            "A4",
            "Departures",
            "Departures from the planned design or the reproduced paper.",
            F.deviations,
            "deviations section",
        ),
    ),
)
