"""CLAIM (Checklist for Artificial Intelligence in Medical Imaging, 2024 update), item by item.

The items are short paraphrases in the published checklist's order; the filler says what the
platform writes from its records. Used for the model report and for the study report.
"""

from __future__ import annotations

from ml.core.checklists import Checklist, Item
from ml.core.checklists import fillers as F

CLAIM = Checklist(
    key="claim",
    title="CLAIM 2024: Checklist for Artificial Intelligence in Medical Imaging",
    reference="Tejani et al., Radiology: Artificial Intelligence 2024 (update of Mongan et al. 2020).",
    items=(
        Item("1", "Title", "Say that the study uses AI, and which kind (deep learning)."),
        Item("2", "Abstract", "Structured summary of design, methods, results and conclusions."),
        Item("3", "Background", "Scientific and clinical background, the intended use and role of the AI."),
        Item("4", "Objectives", "Study objectives and hypotheses."),
        Item("5", "Study design", "Prospective or retrospective."),
        Item("6", "Study goal", "Model creation, feasibility, noninferiority, ..."),
        Item("7", "Data sources", "Where the data came from.", F.data_sources, "dataset page, Table 1"),
        Item("8", "Eligibility", "Inclusion and exclusion criteria.", F.eligibility, "flow.svg"),
        Item("9", "Preprocessing", "How the data were preprocessed.", F.preprocessing, "model page"),
        Item("10", "Data subsets", "How subsets were selected, if any.", F.sample_size, "report"),
        Item("11", "Data elements", "Definitions of the data elements (common data elements)."),
        Item("12", "De-identification", "How the data were de-identified.", F.deidentification),
        Item("13", "Missing data", "How missing data were handled."),
        Item("14", "Reference standard", "Definition of the reference standard, replicable.", F.reference_standard),
        Item("15", "Rationale", "Why this reference standard was chosen."),
        Item(
            "16",
            "Annotators",
            "Source of the annotations; how many annotators, their qualification and training.",
            F.reference_standard,
        ),
        Item("17", "Annotation tools", "The annotation tool.", F.reference_standard),
        Item(
            "18",
            "Annotation variability",
            "Inter- and intra-rater variability; how discrepancies were resolved; pre-labelling.",
            lambda f: " ".join(filter(None, (F.labeller_agreement(f), F.proposals(f)))) or None,
            "labelling agreement page, Table 1",
        ),
        Item("19", "Sample size", "Intended sample size and how it was decided.", F.sample_size),
        Item("20", "Partitions", "How data were assigned to partitions, with proportions.", F.split, "Table 1"),
        Item("21", "Partition level", "Level at which partitions are disjoint (patient).", F.split, "Table 1"),
        Item("22", "Model", "The model in detail: inputs, outputs, layers.", F.model, "model page"),
        Item("23", "Software", "Libraries, frameworks and versions.", F.model, "model page"),
        Item("24", "Initialisation", "How parameters were initialised (random, transfer learning).", F.pretraining),
        Item("25", "Training", "Training approach, augmentation, hyperparameters.", F.training, "model page"),
        Item("26", "Model selection", "How the final model was chosen.", F.training, "model page"),
        Item("27", "Ensembling", "Ensembling, if any.", F.ensembling),
        Item("28", "Metrics", "Performance metrics and why.", F.metrics, "metrics.json, report"),
        Item("29", "Uncertainty", "Statistical significance and uncertainty (CIs).", F.uncertainty, "report"),
        Item(
            "30",
            "Robustness",
            "Robustness or sensitivity analysis (calibration, subgroups).",
            lambda f: " ".join(filter(None, (F.calibration(f), F.subgroups(f)))) or None,
            "metrics.json",
        ),
        Item("31", "Explainability", "Explainability methods and their validation.", F.explainability),
        Item("32", "External validation", "Testing on external data."),
        Item("33", "Flow", "Flow of cases with a diagram of inclusions and exclusions.", F.flow, "flow.svg"),
        Item("34", "Characteristics", "Demographic and clinical characteristics per partition.", F.demographics),
        Item("35", "Performance", "Performance of the final model on the test data.", F.metrics, "metrics.json"),
        Item("36", "Accuracy with precision", "Diagnostic accuracy with 95% CIs.", F.metrics, "report"),
        Item("37", "Failure analysis", "Analysis of the wrongly classified cases."),
        Item(
            "38",
            "Limitations",
            "Limitations: bias, uncertainty, generalisability; departures from the design.",
            F.deviations,
            "deviations section",
        ),
        Item("39", "Implications", "Implications for practice, intended use and clinical role."),
        Item("40", "Registration", "Registration number and registry."),
        Item("41", "Protocol and code", "Where the protocol, code and data can be found."),
        Item("42", "Funding", "Sources of funding and the funders' role."),
    ),
)
