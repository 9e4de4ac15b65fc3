"""List the deviations from the paper: all of them, or those of one model version's configuration."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml.core import deviations
from ml.core.configs import NetConfig
from ml.core.detector import DetectorConfig
from ml.models import Kind, ModelVersion


class Command(BaseCommand):
    help = (
        "Every point where the platform departs from Krogue et al. 2020 or reads it one way among several; "
        "--markdown prints the docs page (docs/research/deviations.md), --model those of one model version."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--markdown", action="store_true", help="print the docs page, generated from the registry")
        parser.add_argument("--model", type=int, metavar="VERSION", help="the deviations of one model version, as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["model"] is not None:
            version = ModelVersion.objects.filter(pk=options["model"]).first()
            if version is None:
                raise CommandError(f"no model version {options['model']}")
            # Read through the config class, so a config stored before a choice existed says what it was.
            if version.kind == Kind.DETECTOR:
                rows = deviations.detector_deviations(DetectorConfig.from_dict(version.config).as_dict())
            else:
                rows = deviations.classifier_deviations(NetConfig.from_dict(version.config).as_dict())
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if options["markdown"]:
            self.stdout.write(deviations.markdown(), ending="")
            return
        for d in deviations.REGISTRY:
            self.stdout.write(f"{d.area:<13} {d.kind:<9} {d.key:<28} {d.title}")
