"""Sentiment classification (e.g. positive/negative reviews), with SST-2, IMDB and Yelp by name."""

from roberta_ft.hub import HubDataset
from roberta_ft.metrics import classification_metrics
from roberta_ft.registry import Task
from roberta_ft_tasks._common import hub_loader

DATASETS = {
    "sst2": HubDataset("stanfordnlp/sst2", text="sentence"),
    "imdb": HubDataset("stanfordnlp/imdb", text="text", splits={"train": "train", "validation": "test"}),
    "yelp_polarity": HubDataset("fancyzhx/yelp_polarity", text="text", splits={"train": "train", "validation": "test"}),
}

TASK = Task(
    name="sentiment",
    description="Sentiment of a text; labels are inferred from the data (e.g. negative/positive or 1-5 stars).",
    text_fields=("text",),
    metrics=classification_metrics(),
    primary_metric="accuracy",
    load=hub_loader("sentiment", DATASETS),
    known_datasets=tuple(DATASETS),
)
