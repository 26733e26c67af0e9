"""Generic text classification: any labels, single texts or pairs. The default task."""

from roberta_ft.metrics import classification_metrics
from roberta_ft.registry import Task

TASK = Task(
    name="classification",
    description="Any single-label classification; labels are inferred from the training data.",
    text_fields=("text",),
    metrics=classification_metrics(),
    primary_metric="accuracy",
)
