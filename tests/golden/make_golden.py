"""Build the golden run folders and the expected outputs of every report writer.

    python tests/golden/make_golden.py            # from the repository root

Run folders (metrics.json, record.json) from seeded synthetic score tables,
through the real metric code (``summarise``; the search engine and ``summarise_search``), no
images, no data, no embeddings:

- ``verification/base``: 1:1, 36 subjects in two sex groups and three race groups, 4 images
  each, every pair compared; one threshold for everyone at FMR 0.05; bootstrap and intersections.
- ``verification/worse``: the same people and pairs, the female genuine scores shifted up (a
  worse camera for one group): FNMR rises for female subjects.
- ``search/base`` and ``search/worse``: one-to-many search, 60 enrolled subjects, the worse run's
  female probes noisier.

Expected outputs in ``expected/``, rendered from those folders: report.html (figures replaced by
``<svg>`` placeholders, since their drawing depends on the matplotlib version), summary.md, the
``evalkit compare`` csv/md of each pair and the ``evalkit check`` table of worse against base.
tests/golden/test_golden.py renders them again and compares byte for byte; after a deliberate
change of a writer, rerun this script and review the diff.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from evalkit.data.samples import Pairs, Samples  # noqa: E402
from evalkit.metrics.search import search  # noqa: E402
from evalkit.metrics.search_summary import summarise_search  # noqa: E402
from evalkit.metrics.summary import summarise  # noqa: E402
from evalkit.report import check, compare, markdown, record  # noqa: E402
from evalkit.report import html as report_html  # noqa: E402
from evalkit.scores import ScoreTable  # noqa: E402

RECORD = {"evalkit_record": 1, "command": "python tests/golden/make_golden.py", "seed": 0, "python": "golden",
          "platform": "golden", "packages": {"evalkit": "golden"}, "images_sha256": "0" * 64,
          "dataset_files_sha256": {}, "timings_seconds": {}}
SEX = ("female", "male")
RACE = ("african", "caucasian", "eastasian")


def verification_table(seed: int = 7, female_shift: float = 0.0):
    """A score table of 36 subjects x 4 images, all pairs; labels per subject; two failures."""
    rng = np.random.default_rng(seed)
    n_subj, per = 36, 4
    subj = np.repeat(np.arange(n_subj), per)
    sex = np.array([SEX[s % 2] for s in range(n_subj)], dtype="<U16")[subj]
    race = np.array([RACE[s % 3] for s in range(n_subj)], dtype="<U16")[subj]
    race[subj == 35] = "unlabelled"
    i, j = np.triu_indices(len(subj), 1)
    mated = subj[i] == subj[j]
    d = np.where(mated, rng.normal(0.45, 0.12, len(i)), rng.normal(0.95, 0.12, len(i)))
    d = np.where(mated & (sex[i] == "female"), d + female_shift, d)
    ok = np.ones(len(subj), bool)
    ok[[5, 77]] = False                       # two images failed to enrol
    names = np.array([f"s{s:02d}" for s in subj])
    samples = Samples("golden", np.array([f"s{s:02d}/{k}" for k, s in enumerate(subj)]),
                      np.array([f"/golden/s{s:02d}/{k}.jpg" for k, s in enumerate(subj)]), names,
                      {"sex": sex, "race": race}, {"sex": "made up for the golden files", "race": "made up"})
    pairs = Pairs(i, j, mated, np.full(len(i), -1), "all_pairs")
    dist = np.where(ok[i] & ok[j], d, np.nan)
    table = ScoreTable.build(samples, pairs, dist, ok)
    return table, samples, ok


def verification_metrics(female_shift: float) -> tuple[dict, ScoreTable]:
    table, samples, ok = verification_table(female_shift=female_shift)
    header = {"experiment": "golden-verification",
              "dataset": {"name": "golden", "n_samples": len(samples), "n_subjects": 36, "attributes": ["sex", "race"],
                          "label_sources": dict(samples.label_sources), "label_coverage": samples.label_coverage()},
              "protocol": {"name": "all_pairs", "n_comparisons": len(table), "n_genuine": int(table.mated.sum()),
                           "n_impostor": int((~table.mated).sum()), "n_folds": 0},
              "backend": {"name": f"synthetic-{'worse' if female_shift else 'base'}", "family": "synthetic",
                          "distance": "euclidean", "fingerprint": {"model": "gaussian scores", "seed": 7}}}
    m = summarise(table, threshold_policy="global_fmr", target_fmr=0.05, threshold_value=None,
                  failure_policy="nonmatch", confidence=0.95, image_failures=[None if k else "no_face" for k in ok],
                  image_groups=dict(samples.attributes), image_subjects=samples.subjects, header=header,
                  min_count=(5, 20), intersections=[["sex", "race"]], bootstrap={"replicates": 200, "seed": 0})
    return m, table


def search_metrics(group_noise: float | None) -> dict:
    rng = np.random.default_rng(3)
    d, n_enrol, n_mated, n_out = 16, 60, 50, 40
    n_sub = n_enrol + n_out
    centre = rng.normal(size=(n_sub, d))
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    sex = np.array([SEX[s % 2] for s in range(n_sub)], dtype=object)
    race = np.array([RACE[s % 3] for s in range(n_sub)], dtype=object)
    subj = np.array([f"p{i:03d}" for i in range(n_sub)])
    probe_sub = np.r_[np.repeat(np.arange(n_mated), 2), np.repeat(np.arange(n_enrol, n_sub), 2)]
    g_noise, p_noise = rng.normal(size=(n_enrol, d)), rng.normal(size=(len(probe_sub), d))
    scale = np.array([(group_noise or 0.6) if sex[s] == "female" else 0.6 for s in probe_sub])
    gallery = centre[:n_enrol] + 0.6 * g_noise / np.sqrt(d)
    probes = centre[probe_sub] + scale[:, None] * p_noise / np.sqrt(d)
    gallery[9] = np.nan
    mate = np.where(probe_sub < n_enrol, probe_sub, -1)
    res = search(probes, gallery, np.arange(n_enrol), mate, sizes=[30, 60], candidates=5)
    image_sub = np.r_[np.arange(n_enrol), probe_sub]
    header = {"experiment": "golden-search",
              "dataset": {"name": "golden", "n_samples": len(image_sub), "n_subjects": n_sub, "attributes": ["sex", "race"],
                          "label_sources": {"sex": "made up", "race": "made up"}},
              "protocol": {"name": "search", "kind": "search", "gallery_sizes": [30, 60], "n_enrolled_subjects": n_enrol,
                           "n_gallery_images": n_enrol, "gallery_images_per_subject": 1,
                           "n_mated_probes": int((mate >= 0).sum()), "n_nonmated_probes": int((mate < 0).sum()),
                           "n_mated_subjects": n_mated, "n_nonmated_subjects": n_out, "candidates": 5, "seed": 3,
                           "nonmated_fraction": 0.5, "max_probes_per_subject": 2,
                           "n_comparisons": int(len(probes) * n_enrol)},
              "backend": {"name": f"synthetic-{'worse' if group_noise else 'base'}", "family": "synthetic",
                          "distance": "euclidean", "fingerprint": {"model": "gaussian clusters", "seed": 3}}}
    return summarise_search(
        res, probe_subjects=subj[probe_sub], probe_groups={"sex": sex[probe_sub], "race": race[probe_sub]},
        column_groups={"sex": sex[:n_enrol], "race": race[:n_enrol]}, threshold_policy="global_fpir",
        target_fpir=0.1, threshold_value=None, failure_policy="nonmatch", confidence=0.95,
        image_failures=["no_face" if k == 9 else None for k in range(len(image_sub))],
        image_groups={"sex": sex[image_sub], "race": race[image_sub]}, image_subjects=subj[image_sub], header=header,
        min_count=(5, 20), intersections=[["sex", "race"]], bootstrap={"replicates": 200, "seed": 0},
        audit=[{"threshold": 0.5, "source": "a made-up vendor threshold"}])


def write_run(out: Path, m: dict) -> Path:
    """A run folder as the report writers read it: metrics.json and record.json (no scores.csv: the
    score table is rebuilt from the seed, and the figures are not part of the golden outputs)."""
    out.mkdir(parents=True, exist_ok=True)
    record.write_json(out / "metrics.json", m)
    record.write_json(out / "record.json", RECORD)
    return out


def build_runs(root: Path = HERE) -> dict[str, Path]:
    """Write the four golden run folders under ``root``; returns name -> folder."""
    out = {}
    for name, shift in (("base", 0.0), ("worse", 0.12)):
        m, _ = verification_metrics(shift)
        out[f"verification/{name}"] = write_run(root / "verification" / name, m)
    for name, noise in (("base", None), ("worse", 0.95)):
        out[f"search/{name}"] = write_run(root / "search" / name, search_metrics(noise))
    return out


def strip_figures(html: str) -> str:
    """The report with every inline figure replaced by a placeholder (figures depend on matplotlib)."""
    return re.sub(r"<svg\b.*?</svg>", "<svg/>", html, flags=re.S)


def render(kind: str, out: Path) -> dict[str, str]:
    """Every writer's output for the golden runs of ``kind``, as text, keyed by file name. Paths are
    relative to the repository root (the working directory while rendering)."""
    base, worse = Path("tests/golden") / kind / "base", Path("tests/golden") / kind / "worse"
    m = json.loads((REPO / base / "metrics.json").read_text())
    texts = {f"{kind}.report.html": strip_figures(report_html.render_report(REPO / base)),
             f"{kind}.summary.md": markdown.render_summary(m)}
    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        res = compare.compare([str(base), str(worse)], out / f"compare-{kind}")
        texts[f"{kind}.compare.md"] = (out / f"compare-{kind}" / "compare.md").read_text()
        texts[f"{kind}.compare.csv"] = (out / f"compare-{kind}" / "compare.csv").read_text()
        for extra in ("compare_nist.csv", "compare_score_shifts.csv"):   # 1:1 runs only (issue 12)
            if (out / f"compare-{kind}" / extra).is_file():
                texts[f"{kind}.{extra}"] = (out / f"compare-{kind}" / extra).read_text()
        assert res["kind"] == ("search" if kind == "search" else "verification")
        run_m, run_dir = check.load_metrics(worse, "run")
        base_m, base_dir = check.load_metrics(base, "baseline")
        rules = check.load_rules(check.search_rules_path() if kind == "search" else None)
        rows = check.evaluate(run_m, base_m, rules)
        texts[f"{kind}.check.txt"] = check.render_table(rows, run_m, base_m, run_dir, base_dir)
    finally:
        os.chdir(cwd)
    return texts


def main() -> int:
    build_runs()
    expected = HERE / "expected"
    tmp = HERE / ".render"
    shutil.rmtree(expected, ignore_errors=True)
    expected.mkdir()
    with contextlib.redirect_stdout(io.StringIO()):
        for kind in ("verification", "search"):
            for name, text in render(kind, tmp).items():
                (expected / name).write_text(text)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {sorted(p.name for p in expected.iterdir())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
