"""TRIPOD+AI (reporting of prediction models that use AI), item by item, for the model.

Short paraphrases in the published checklist's order (Collins et al., BMJ 2024); the filler says
what the platform writes from its records, None where only the authors can.
"""

from __future__ import annotations

from ml.core.checklists import Checklist, Item
from ml.core.checklists import fillers as F

TRIPOD_AI = Checklist(
    key="tripod_ai",
    title="TRIPOD+AI: reporting a prediction model that uses AI",
    reference="Collins et al., BMJ 2024;385:e078378.",
    items=(
        Item("1", "Title", "Say that a model is developed or evaluated, for whom and what it predicts."),
        Item("2", "Abstract", "Structured summary (TRIPOD+AI for abstracts)."),
        Item("3a", "Background", "Healthcare context and why the model is needed."),
        Item("3b", "Purpose", "Intended use, users and target population."),
        Item("3c", "Inequalities", "Known health inequalities between groups."),
        Item("4", "Objectives", "Whether the study develops, evaluates or both."),
        Item("5a", "Data sources", "Sources of data, and why they represent the target population.", F.data_sources),
        Item("5b", "Dates", "Dates of the data collected.", F.data_sources),
        Item("6a", "Setting", "Where the data come from: setting, centres."),
        Item("6b", "Eligibility", "Eligibility criteria of the participants.", F.eligibility, "flow.svg"),
        Item("6c", "Treatments", "Treatments received, if relevant."),
        Item("7", "Data preparation", "Preprocessing and quality checks.", F.preprocessing, "model page"),
        Item("8a", "Outcome", "How the outcome (reference standard) was defined and assessed.", F.reference_standard),
        Item("8b", "Outcome assessors", "Qualification of the assessors and their agreement.", F.labeller_agreement),
        Item("8c", "Outcome blinding", "Whether outcome assessment was blind to the predictors.", F.proposals),
        Item("9a", "Predictors", "Choice of the inputs; definition and measurement.", F.preprocessing),
        Item("10", "Sample size", "How the sample size was arrived at.", F.sample_size),
        Item("11", "Missing data", "How missing data were handled."),
        Item("12a", "Data use", "How the data were split for development and evaluation.", F.split, "Table 1"),
        Item("12b", "Predictor handling", "How the inputs were handled in the analysis.", F.preprocessing),
        Item("12c", "Model building", "Model type, building steps, hyperparameters, initialisation.", F.model),
        Item("12d", "Heterogeneity", "How heterogeneity across settings or groups was handled.", F.subgroups),
        Item("12e", "Performance measures", "Which measures of performance, with their CIs.", F.uncertainty),
        Item("12f", "Updating", "Any model updating or recalibration.", F.calibration),
        Item("12g", "Predictions", "How the predictions are computed from the model.", F.ensembling),
        Item("13", "Class imbalance", "How class imbalance was handled.", F.training),
        Item("14", "Fairness", "Approaches to fairness across groups.", F.subgroups),
        Item("15", "Output", "The model's output and any threshold.", F.model),
        Item("16", "Training vs evaluation", "Differences between development and evaluation data.", F.demographics),
        Item("17", "Ethics", "Ethics approval and consent."),
        Item("18a", "Funding", "Funding and the funders' role."),
        Item("18b", "Conflicts", "Conflicts of interest."),
        Item("18c", "Protocol", "Where the study protocol can be found."),
        Item("18d", "Registration", "Registration of the study."),
        Item("18e", "Data sharing", "Availability of the data."),
        Item("18f", "Code sharing", "Availability of the code."),
        Item("19", "Patient involvement", "Patient and public involvement."),
        Item("20a", "Flow", "Flow of participants, with numbers.", F.flow, "flow.svg"),
        Item("20b", "Characteristics", "Characteristics overall and per data source or split.", F.demographics),
        Item("20c", "Comparison", "Comparison of the development and evaluation data.", F.split, "Table 1"),
        Item("21", "Numbers", "Participants and outcome events in each analysis.", F.split, "Table 1"),
        Item("22", "Full model", "The model itself, or how to access it.", F.model),
        Item("23a", "Performance", "Performance with CIs, including calibration.", F.metrics, "metrics.json"),
        Item("23b", "Subgroups", "Performance in key subgroups.", F.subgroups, "metrics.json"),
        Item("24", "Model updating", "Results of any updating."),
        Item("25", "Interpretation", "Overall interpretation of the main results."),
        Item("26", "Limitations", "Limitations: sample, bias, departures from the design.", F.deviations),
        Item("27a", "Input quality", "How poor or missing input is handled in use.", F.eligibility),
        Item("27b", "Users", "Whether users need expertise to use the model."),
        Item("27c", "Future research", "Next steps and generalisability."),
    ),
)
