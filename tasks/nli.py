"""Natural language inference: does the premise entail, contradict or say nothing about the hypothesis?"""

from roberta_ft.hub import HubDataset
from roberta_ft.metrics import classification_metrics
from roberta_ft.registry import Task
from roberta_ft_tasks._common import hub_loader

LABELS = ("entailment", "neutral", "contradiction")
DATASETS = {
    "mnli": HubDataset(
        "nyu-mll/multi_nli",
        text="premise",
        text_pair="hypothesis",
        splits={"train": "train", "validation": "validation_matched"},
    ),
    "snli": HubDataset("stanfordnlp/snli", text="premise", text_pair="hypothesis"),
}

TASK = Task(
    name="nli",
    description="Premise/hypothesis pairs labelled entailment, neutral or contradiction.",
    text_fields=("premise", "hypothesis"),
    label_names=LABELS,
    metrics=classification_metrics(len(LABELS)),
    primary_metric="accuracy",
    load=hub_loader("nli", DATASETS, LABELS),
    known_datasets=tuple(DATASETS),
)
