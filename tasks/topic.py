"""Topic classification (multi-class news/documents), with AG News and DBpedia by name."""

from roberta_ft.hub import HubDataset
from roberta_ft.metrics import classification_metrics
from roberta_ft.registry import Task
from roberta_ft_tasks._common import hub_loader

DATASETS = {
    "ag_news": HubDataset("fancyzhx/ag_news", text="text", splits={"train": "train", "validation": "test"}),
    "dbpedia_14": HubDataset("fancyzhx/dbpedia_14", text="content", splits={"train": "train", "validation": "test"}),
}

TASK = Task(
    name="topic",
    description="The topic of a document; labels are inferred from the data. Macro-F1 is reported beside accuracy.",
    text_fields=("text",),
    metrics=classification_metrics(mcc=True),
    primary_metric="accuracy",
    load=hub_loader("topic", DATASETS),
    known_datasets=tuple(DATASETS),
)
