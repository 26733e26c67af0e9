"""The model card (README.md) in the Hugging Face format: YAML metadata, results, settings, usage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import yaml

from roberta_ft.problems import CardNotes

if TYPE_CHECKING:
    from roberta_ft.config import PretrainConfig


def render_model_card(
    run_config: dict[str, Any],
    metrics: dict[str, Any],
    validation_report: dict[str, Any] | None = None,
    pictures: Sequence[str] = (),
    notes: CardNotes | None = None,
) -> str:
    """README.md for the output dir: per-class results from validation_report.json, links to `pictures`, and
    what the problem kind adds (`notes`: Problem.card_notes())."""
    config = run_config["config"]
    notes = notes or CardNotes()
    best = metrics.get("best") or {}
    scores = {k: v for k, v in best.items() if k not in ("epoch", "step", "train_loss") and isinstance(v, float)}
    base_model = None if config["model"] == "tiny" else config["model"]
    dataset = config["data"] if not str(config["data"]).startswith("/") else str(config["data"]).rsplit("/", 1)[-1]
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["roberta-ft", "text-classification", run_config["task"], *notes.tags],
        "metrics": list(scores),
        "model-index": [
            {
                "name": f"{run_config['task']} classifier",
                "results": [
                    {
                        "task": {"type": "text-classification", "name": "Text Classification"},
                        "dataset": {"name": dataset, "type": dataset, "split": "validation"},
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
        f"({run_config['num_train_examples']} training rows, validated on "
        f"{str(run_config['validation_source']).replace(str(config['data']), dataset)}, "
        f"{run_config['num_validation_examples']} rows).",
        "",
    ]
    if labels:
        lines += ["Labels: " + ", ".join(f"`{name}`" for name in labels) + ".", ""]
    method = run_config.get("method") or {}
    if method.get("name") == "few-shot":
        lines += [
            f"Trained with the few-shot method ({method.get('reason')}): mean pooling built into one more encoder "
            "layer, contrastive training of the encoder on pairs of the training rows, then a logistic-regression "
            "head on the frozen features, copied into the classifier.",
            "",
        ]
    if not scores:
        lines += ["No validation rows scored this model: `roberta-ft eval` it on a labelled file.", ""]
    lines += ["## Results (validation, best epoch)", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {name} | {value:.4f} |" for name, value in scores.items()]
    if best:
        chosen_by = metrics.get("primary_metric")
        lines += [
            "",
            f"Best epoch: {best.get('epoch')} of {len(metrics.get('epochs', []))}, chosen by {chosen_by}.",
            "",
        ]
    lines += _per_class_lines(validation_report)
    lines += _calibration_lines(metrics)
    for name in pictures:
        lines += [f"![{_PICTURES.get(name, name)}]({name})", ""]
    settings = ["learning_rate", "epochs", "batch_size", "max_length", "warmup_ratio", "weight_decay", "seed"]
    lines += ["## Training settings", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {name} | {config[name]} |" for name in settings]
    lines += [f"| {name} | {value} |" for name, value in notes.settings]
    lines += _data_setting_lines(run_config)
    lines += [
        f"| device / precision | {run_config['device']} / {run_config['precision']} |",
        "",
        "## How to use",
        "",
        "```python",
        "from transformers import pipeline",
        "",
        'classifier = pipeline("text-classification", model="PATH/TO/THIS/DIR")',
        *notes.usage,
        "```",
        "",
        "```bash",
        "roberta-ft predict PATH/TO/THIS/DIR texts.txt --output predictions.csv" + notes.predict_hint,
        "roberta-ft eval PATH/TO/THIS/DIR labelled.csv   # metrics, per-class table, eval_report.json",
        "```",
        "",
        *_reproduce_lines(run_config),
    ]
    return "\n".join(lines)


_PICTURES = {"training_curves.png": "Training curves", "confusion_matrix.png": "Confusion matrix (validation)"}


def _calibration_lines(metrics: dict[str, Any]) -> list[str]:
    """What the calibration phase fitted (docs/calibration.md): the values and the validation ECE before/after."""
    fitted, thresholds = metrics.get("calibration") or {}, metrics.get("thresholds") or {}
    if not fitted and not thresholds:
        return []
    lines = ["## Calibration (validation rows)", ""]
    method = fitted.get("method")
    if method == "temperature":
        lines.append(
            f"Temperature scaling, T = {fitted['temperature']:.4f}, folded into the classifier's output layer: "
            "every loader (`pipeline()`, ONNX, serve) gives the calibrated probabilities; the labels are unchanged."
        )
    elif method == "label_scaling":
        lines.append(
            "A scale and a bias per label (Platt scaling), folded into the classifier's output layer: every loader "
            "gives the calibrated probabilities."
        )
        lines += ["", "| label | scale | bias |", "| --- | --- | --- |"]
        lines += [f"| {_cell(n)} | {a:.4f} | {fitted['bias'][n]:.4f} |" for n, a in fitted["scale"].items()]
    if "validation_ece_after" in fitted:
        lines += [
            "",
            f"Expected calibration error ({fitted['bins']} bins, {fitted['validation_rows']} validation rows): "
            f"{fitted['validation_ece_before']:.2%} before, {fitted['validation_ece_after']:.2%} after.",
        ]
    if "per_label" in thresholds:
        lines += ["", f"Per-label thresholds (best {thresholds['metric']} on the validation rows):", ""]
        lines += ["| label | threshold |", "| --- | --- |"]
        lines += [f"| {_cell(n)} | {t:.4f} |" for n, t in thresholds["per_label"].items()]
    elif "positive_label" in thresholds:
        lines += [
            "",
            f"Decision threshold (best {thresholds['metric']} on the validation rows): "
            f"`{thresholds['positive_label']}` when its probability is at least {thresholds['threshold']:.4f}.",
        ]
    return [*lines, ""]


def _per_class_lines(report: dict[str, Any] | None) -> list[str]:
    if not report or not report.get("per_class"):
        return []
    lines = ["### Per class (validation, best epoch)", "", "| label | precision | recall | f1 | support |"]
    lines.append("| --- | --- | --- | --- | --- |")
    for name, values in report["per_class"].items():
        lines.append(
            f"| {_cell(name)} | {values['precision']:.4f} | {values['recall']:.4f} | {values['f1']:.4f} "
            f"| {values['support']} |"
        )
    return [*lines, ""]


def _data_setting_lines(run_config: dict[str, Any]) -> list[str]:
    """The settings that change how the data were read, shown only when they are not the defaults."""
    config = run_config["config"]
    lines = []
    if config.get("long_text", "truncate") != "truncate":
        stride = f", stride {config['stride']}" if config.get("stride") else ""
        lines.append(f"| long texts | {config['long_text']}{stride} |")
    weights = run_config.get("class_weights")
    if weights:
        lines.append("| class weights | " + ", ".join(f"{_cell(k)} {v:.3g}" for k, v in weights.items()) + " |")
    if config.get("metric_for_best"):
        lines.append(f"| best checkpoint by | {config['metric_for_best']} |")
    return lines


def _reproduce_lines(run_config: dict[str, Any]) -> list[str]:
    versions = run_config.get("versions") or {}
    lines = ["## Reproducibility", ""]
    lines.append(
        "`run_config.json` holds every setting, the library versions and the data fingerprint; "
        "`metrics.json` the metrics of every epoch and the training loss per step."
    )
    lines.append("")
    if run_config.get("data_sha256"):
        lines.append(f"- data fingerprint (sha256 of the rows read): `{run_config['data_sha256'][:16]}…`")
    for role, info in (run_config.get("data_files") or {}).items():
        lines.append(f"- {role} file `{info['path'].rsplit('/', 1)[-1]}`: sha256 `{info['sha256'][:16]}…`")
    if versions:
        lines.append("- versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    return [*lines, ""]


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_pretraining_card(
    run_config: dict[str, Any], metrics: dict[str, Any], config: PretrainConfig, pictures: Sequence[str]
) -> str:
    """README.md for a pretrained masked LM: the corpus, the recipe, the masking and the perplexity curve."""
    corpus = run_config["corpus"]
    best = metrics["best"]
    rows = []
    if metrics.get("initial"):
        rows.append(
            f"| 0 (before) | | {metrics['initial']['eval_loss']:.4f} | {metrics['initial']['perplexity']:.1f} |"
        )
    for e in metrics["epochs"]:
        rows.append(f"| {e['epoch']} | {e['train_loss']:.4f} | {e['eval_loss']:.4f} | {e['perplexity']:.1f} |")
    lines = [
        "---",
        "library_name: transformers",
        "pipeline_tag: fill-mask",
        "tags: [roberta-ft, masked-lm, pretraining]",
        "---",
        "",
        f"# Masked LM pretrained with roberta-ft {run_config['roberta_ft_version']}",
        "",
        f"- Started from: `{config.model}`"
        + (" (random weights, tokenizer trained on the corpus)" if config.is_tiny else ""),
        f"- Corpus: `{config.corpus}`: {corpus['documents']} documents, {corpus['train']['tokens']} training tokens in "
        f"{corpus['train']['blocks']} blocks of up to {corpus['max_length']} tokens; "
        f"{corpus['validation']['blocks']} validation blocks ({config.validation_split:.0%} of the documents)",
        f"- Recipe: {config.recipe or 'default'}; batch {config.batch_size} sequences, learning rate "
        f"{config.learning_rate:g}, "
        + (f"{config.max_steps} steps" if config.max_steps else f"{config.epochs} epochs")
        + f", AdamW betas {tuple(config.adam_betas)}, eps {config.adam_epsilon:g}, weight decay {config.weight_decay:g}",
        f"- Masking: dynamic, {config.mlm_probability:.0%} of tokens "
        + (
            "in whole words (80% <mask>, 10% random, 10% unchanged, per word)"
            if config.whole_word_masking
            else "(80% <mask>, 10% random, 10% unchanged)"
        )
        + (
            f"; attention biased toward nearby tokens over the first {config.locality_warmup:.0%} of the steps, "
            "fading to none (locality warm-up)"
            if config.locality_warmup
            else ""
        ),
        f"- Best validation loss {best['eval_loss']:.4f} (perplexity {best['perplexity']:.1f}) at epoch {best['epoch']}",
        f"- {metrics['train_tokens_per_second']:.0f} training tokens/s on {run_config['device']} "
        f"({run_config['precision']})",
        "",
        "| epoch | train loss | validation loss | perplexity |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        *[f"![{name}]({name})" for name in pictures],
        "",
        "Fine-tune it: `roberta-ft train DATA --model THIS_DIR` (the LM head is dropped, a classifier head is added).",
        "",
    ]
    return "\n".join(lines)
