"""Diagnosis, not a result: can one temperature calibrate the SST-2 model of calibration_bench.py at all?

Fits the temperature on the scored rows themselves (an oracle: what the best single temperature could do) and on
2,000 of the 10,000 held-out training rows (scored on the other 8,000), for the `--calibration none` model that
`calibration_bench.py --part sst2` trained in WORK_DIR/sst2-none. Prints the ECE of each.

    python benchmarks/calibration_oracle.py --shared /work/shared --work-dir /work/bench/calib
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from calibration_bench import HELD_OUT_ROWS, TRAIN_ROWS  # noqa: E402
from common import SST2_RELATIVE, read_sst2_tsv, require_shared  # noqa: E402


def main() -> int:
    from roberta_ft import calibration, inference
    from roberta_ft.problems import softmax

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("/work/shared"))
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/results/calibration"))
    args = parser.parse_args()
    folder = require_shared(args.shared) / SST2_RELATIVE
    held = read_sst2_tsv(folder / "train.tsv")[TRAIN_ROWS : TRAIN_ROWS + HELD_OUT_ROWS]
    dev = read_sst2_tsv(folder / "dev.tsv")
    model = inference.load(args.work_dir / "sst2-none", device="cpu", precision="fp32")
    names = [int(name) for name in model.problem.labels.names]

    def logits(rows):
        raw = model.logits(model.encode([text for text, _ in rows]), 64)
        ordered = np.zeros_like(raw)
        ordered[:, names] = raw
        return ordered, np.array([label for _, label in rows])

    def ece(z, y, temperature=1.0):
        return calibration.single_label_ece(softmax(z / temperature), y)

    result = {}
    for name, rows in (("held_out", held), ("dev", dev)):
        z, y = logits(rows)
        best = calibration.fit_temperature(z, y)
        result[name] = {"oracle_temperature": best, "ece_t1": ece(z, y), "ece_oracle_temperature": ece(z, y, best)}
    z, y = logits(held)
    fitted = calibration.fit_temperature(z[:2000], y[:2000])
    result["fitted_on_2000_held_out_rows"] = {
        "temperature": fitted,
        "ece_other_8000_t1": ece(z[2000:], y[2000:]),
        "ece_other_8000": ece(z[2000:], y[2000:], fitted),
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
