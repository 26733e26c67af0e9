"""The model card (README.md) in the Hugging Face format: YAML metadata, results, settings, usage."""

from __future__ import annotations

from typing import Any

import yaml


def render_model_card(run_config: dict[str, Any], metrics: dict[str, Any]) -> str:
    config = run_config["config"]
    best = metrics.get("best") or {}
    scores = {k: v for k, v in best.items() if k not in ("epoch", "step", "train_loss") and isinstance(v, float)}
    base_model = None if config["model"] == "tiny" else config["model"]
    dataset = config["data"] if not str(config["data"]).startswith("/") else str(config["data"]).rsplit("/", 1)[-1]
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["roberta-ft", "text-classification", run_config["task"]],
        "model-index": [
            {
                "name": f"{run_config['task']} classifier",
                "results": [
                    {
                        "task": {"type": "text-classification", "name": "Text Classification"},
                        "dataset": {"name": dataset, "type": dataset},
                        "metrics": [{"type": name, "value": round(value, 4)} for name, value in scores.items()],
                    }
                ],
            }
        ],
    }
    if base_model:
        metadata["base_model"] = base_model
    labels = run_config.get("label_names") or []
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).strip(),
        "---",
        "",
        f"# {run_config['task']} classifier",
        "",
        (
            f"Fine-tuned from `{base_model}`"
            if base_model
            else "A small RoBERTa trained from scratch (`--model tiny`, not pretrained)"
        )
        + f" with [roberta-ft](https://pypi.org/project/roberta-ft/) on `{dataset}` "
        f"({run_config['num_train_examples']} training rows, validated on {run_config['validation_source']}, "
        f"{run_config['num_validation_examples']} rows).",
        "",
    ]
    if labels:
        lines += ["Labels: " + ", ".join(f"`{name}`" for name in labels) + ".", ""]
    lines += ["## Results (validation, best epoch)", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {name} | {value:.4f} |" for name, value in scores.items()]
    if best:
        lines += ["", f"Best epoch: {best.get('epoch')} of {len(metrics.get('epochs', []))}.", ""]
    settings = ["learning_rate", "epochs", "batch_size", "max_length", "warmup_ratio", "weight_decay", "seed"]
    lines += ["## Training settings", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {name} | {config[name]} |" for name in settings]
    lines += [
        f"| device / precision | {run_config['device']} / {run_config['precision']} |",
        "",
        "## How to use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        'classifier = pipeline("text-classification", model="PATH/TO/THIS/DIR")',
        'classifier("An example text")',
        "```",
        "",
        "```bash",
        "roberta-ft predict PATH/TO/THIS/DIR texts.txt --output predictions.csv",
        "```",
        "",
    ]
    return "\n".join(lines)
