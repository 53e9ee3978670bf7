"""Issue 12 items 4-6 on the page: a missing interval shows its reason, units once per column,
per-image label wording, provenance, and the disparity lines of compare."""

from __future__ import annotations

from evalkit.report import compare as compare_mod
from evalkit.report import html as report_html
from evalkit.report import stats_sections as ss


def _m(level="subject"):
    return {
        "dataset": {"label_level": {"age": level}, "label_provenance": {"age": "self-reported at capture"}},
        "groups": {"age": {"0-12": {}, "20-39": {}}},
        "disparity": {"age": {
            "fmr_ratio_to_reference": {"reference": "0-12", "by_group": {
                "20-39": {"value": 4.76, "ci": None, "ci_reason": "the FMR ratio is undefined in 365 of 1000 bootstrap replicates"}}},
            "accuracy_std": {"value": 0.0249, "ci": [0.0102, 0.0408], "ci_reason": None},
            "fdr": {"value": 0.9, "ci": None, "ci_reason": "degenerate"}}},
        "nist": {"age": {r: {"worst": "20-39", "max_min_ratio": {"value": 2.0, "ci": [0.8, 3.0], "ci_reason": None},
                              "gini": {"value": None, "reason": "FMR is 0 for every group", "ci": None,
                                       "ci_reason": "the value itself is undefined"}} for r in ("fmr", "fnmr")}},
    }


def test_missing_interval_shows_its_reason_in_the_html():
    m = _m()
    cell = report_html._ci_cell("disparity.age.fmr_ratio_to_reference.by_group.20-39.ci", "fmr_ratio_to_reference",
                                m["disparity"]["age"]["fmr_ratio_to_reference"]["by_group"]["20-39"])
    assert "not estimable: the FMR ratio is undefined in 365 of 1000 bootstrap replicates" in cell


def test_accuracy_spread_value_and_interval_in_one_unit():
    d = _m()["disparity"]["age"]["accuracy_std"]
    assert report_html._fmt_val("accuracy_std", d["value"]) == "2.49"
    cell = report_html._ci_cell("disparity.age.accuracy_std.ci", "accuracy_std", d)
    assert 'data-key="disparity.age.accuracy_std.ci.0" data-value="0.0102">1.02<' in cell
    assert 'data-key="disparity.age.accuracy_std.ci.1" data-value="0.0408">4.08<' in cell
    assert report_html._unit("accuracy_std") == "percentage points"
    assert "2.49 percentage points (95% CI 1.02–4.08)" in report_html._reading("accuracy_std", d, {}, 0.95)


def test_per_image_labels_are_worded_as_such():
    per_subject, per_image = _m("subject"), _m("image")
    assert "an impostor comparison when both subjects do" in ss.membership_sentence(per_subject)
    assert "both subjects do" not in ss.membership_sentence(per_image)
    assert "IMAGES" in ss.membership_sentence(per_image)
    assert "mixed-group impostor pairs" in ss.mixed_note(per_subject, "age")
    assert "genuine pairs" in ss.mixed_note(per_image, "age") and "mixed-group impostor pairs" not in ss.mixed_note(per_image, "age")
    assert ss.provenance(per_image, "age") == "self-reported at capture"


def test_nist_section_tags_numbers_and_gives_reasons():
    html = ss.html_nist_section(_m())
    assert 'data-key="nist.age.fnmr.max_min_ratio.ci.0" data-value="0.8"' in html
    assert "FMR is 0 for every group" in html and "(20-39 / 20-39)" in html


def test_compare_shows_the_reason_for_a_missing_interval():
    cell = compare_mod._ratio_cell({"value": 4.76, "ci": None, "groups": ["female", "male"],
                                    "ci_reason": "undefined in 365 of 1000 bootstrap replicates"})
    assert cell == "4.76 (no interval: undefined in 365 of 1000 bootstrap replicates) (female / male)"
