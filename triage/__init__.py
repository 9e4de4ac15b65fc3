"""Triage: the worklist of radiographs read by the model, and the operations page (arrival to
score, backlog, workers). Views, services and URLs only: its data are ml's models."""
