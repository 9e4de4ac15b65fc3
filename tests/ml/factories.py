"""factory_boy factories of the ml app: dataset versions and their hips, training runs, model
versions (rows with a bundle path that does not exist: for pages and rules that never load the
model), stored hip predictions and radiograph readings."""

import uuid

import factory
from django.utils import timezone

from ml.core.vocab import CLASSES, FRACTURE_CLASSES
from ml.models import (
    DatasetHip,
    DatasetVersion,
    HipPrediction,
    Kind,
    ModelVersion,
    RadiographReading,
    Split,
    TrainingRun,
)
from tests.annotate.factories import RadiographFactory


class DatasetVersionFactory(factory.django.DjangoModelFactory):
    """A frozen dataset version row with no hips (add them with DatasetHipFactory)."""

    class Meta:
        model = DatasetVersion

    seed = 0
    fractions = factory.LazyFunction(lambda: [0.6, 0.25, 0.15])
    content_hash = factory.LazyFunction(lambda: uuid.uuid4().hex)


class DatasetHipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DatasetHip

    dataset = factory.SubFactory(DatasetVersionFactory)
    radiograph = factory.SubFactory(RadiographFactory)
    patient = factory.SelfAttribute("radiograph.study.patient")
    split = Split.TEST
    side = "right"
    hip_class = "normal"
    x, y, width, height = 10.0, 20.0, 100.0, 100.0


class TrainingRunFactory(factory.django.DjangoModelFactory):
    """A queued run of ``cpu-small``."""

    class Meta:
        model = TrainingRun

    config_name = "cpu-small"
    config = factory.LazyAttribute(lambda o: {"name": o.config_name})
    dataset = factory.SubFactory(DatasetVersionFactory)
    identity = factory.LazyFunction(lambda: uuid.uuid4().hex)
    epochs = 30


class ModelVersionFactory(factory.django.DjangoModelFactory):
    """An unevaluated, inactive classifier whose bundle does not exist."""

    class Meta:
        model = ModelVersion

    kind = Kind.CLASSIFIER
    config_name = "cpu-small"
    config = factory.LazyAttribute(lambda o: {"name": o.config_name})
    dataset = factory.SubFactory(DatasetVersionFactory)
    identity = factory.LazyFunction(lambda: uuid.uuid4().hex)
    bundle = "models/fake.hipmodel"
    bundle_sha256 = "0" * 64
    is_active = False
    evaluation = None
    evaluated_at = factory.LazyAttribute(lambda o: timezone.now() if o.evaluation is not None else None)


def _probabilities(o) -> list[float]:
    """All on ``predicted_class``."""
    return [1.0 if key == o.predicted_class else 0.0 for key in CLASSES]


class HipPredictionFactory(factory.django.DjangoModelFactory):
    """A stored prediction of the right hip as ml.scoring writes it (its heatmap file not written)."""

    class Meta:
        model = HipPrediction

    model_version = factory.SubFactory(ModelVersionFactory)
    radiograph = factory.SubFactory(RadiographFactory)
    side = "right"
    box = factory.LazyFunction(lambda: [10.0, 20.0, 100.0, 100.0])
    box_source = "ground_truth"
    predicted_class = "normal"
    probabilities = factory.LazyAttribute(_probabilities)
    fracture_probability = factory.LazyAttribute(
        lambda o: sum(o.probabilities[CLASSES.index(key)] for key in FRACTURE_CLASSES)
    )
    top2 = factory.LazyAttribute(
        lambda o: [CLASSES[i] for i in sorted(range(len(CLASSES)), key=lambda i: (-o.probabilities[i], i))[:2]]
    )
    heatmap = factory.Sequence(lambda n: f"heatmaps/{n}.png")
    heatmap_rect = factory.LazyFunction(lambda: [0.0, 10.0, 120.0, 130.0])


class RadiographReadingFactory(factory.django.DjangoModelFactory):
    """A radiograph read now, one second after it arrived (no model versions named)."""

    class Meta:
        model = RadiographReading

    radiograph = factory.SubFactory(RadiographFactory)
    scored_at = factory.LazyFunction(timezone.now)
    seconds = 1.0
