"""roberta-ft: fine-tune RoBERTa for text classification.

The Python API mirrors the CLI, one module per command::

    from roberta_ft.config import TrainConfig
    from roberta_ft.train import train

    result = train(TrainConfig(data="reviews.csv", output="runs/reviews", model="tiny"))
"""

__version__ = "0.1.0"
