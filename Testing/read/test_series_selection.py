"""Choosing the series to process from series summaries: preferences, refusals, override, table."""

from pathlib import Path

import pytest

from ParaspinalSegLib.read.dicom import SeriesSummary
from ParaspinalSegLib.read.dicom_files import DicomSource
from ParaspinalSegLib.errors import InputError, NoSuitableSeriesError
from ParaspinalSegLib.read.series_selection import (
    choose_series,
    description_words,
    format_series_table,
    sequence_label,
    word_score,
)
from ParaspinalSegLib.slices import SeriesInfo


def summary(
    number: int,
    description: str,
    *,
    orientation: str = "axial",
    angle: float = 3.0,
    sequence: str = "SE",
    te: float | None = 100.0,
    tr: float | None = 4000.0,
    etl: int | None = 17,
    slices: int = 30,
    modality: str = "MR",
    patient: str = "aaaa1111",
    **extra,
) -> SeriesSummary:
    info = SeriesInfo(uid=f"1.2.3.{number}", patient=patient, study="bbbb2222", number=number,
                      description=description, modality=modality, sequence=sequence, echo_time_ms=te,
                      repetition_time_ms=tr, echo_train_length=etl, source="/data/study")
    files = tuple(DicomSource(Path(f"/data/study/{number}/{k}")) for k in range(slices))
    return SeriesSummary(info, orientation, angle, slices, ((0.7, 0.7),), 1, files, **extra)


def chosen(*summaries: SeriesSummary) -> str:
    return choose_series(list(summaries)).summary.info.description


def test_t2_tse_axial_wins_over_the_usual_neighbours():
    study = [
        summary(1, "localizer", sequence="GR", te=4, tr=8, etl=1, slices=3,
                image_type=("ORIGINAL", "PRIMARY", "LOCALIZER")),
        summary(2, "t2_tse_sag", orientation="sagittal", angle=90.0),
        summary(3, "t1_tse_tra", te=12, tr=600, etl=3),
        summary(4, "t2_tse_dixon_tra_W", te=95, tr=4500),
        summary(5, "t2_tse_tra", te=98, tr=4000, etl=17, slices=40),
        summary(6, "t2_tse_tra_fs", scan_options=("FS",)),
        summary(7, "ep2d_diff_tra", sequence="EP", te=70, tr=5000, etl=1),
    ]
    choice = choose_series(study)
    assert choice.summary.info.number == 5
    assert choice.reason == "series 5 't2_tse_tra': axial, T2 TSE (TE 98 ms, TR 4000 ms, ETL 17), 40 slices"
    assert not choice.overridden


def test_timing_decides_when_descriptions_say_nothing():
    t2 = summary(1, "series a", te=110, tr=3200, etl=20)
    gre = summary(2, "series b", sequence="GR", te=5, tr=300, etl=1)
    t1 = summary(3, "series c", te=10, tr=500, etl=4)
    assert chosen(gre, t1, t2) == "series a"
    assert [sequence_label(s) for s in (t2, gre, t1)] == ["T2 TSE", "GRE", "T1 TSE"]


def test_ties_go_to_more_slices_then_the_later_series():
    assert chosen(summary(1, "t2_tse_tra", slices=20), summary(2, "t2_tse_tra_2", slices=30)) == "t2_tse_tra_2"
    assert chosen(summary(8, "t2 repeat"), summary(3, "t2 first")) == "t2 repeat"


def test_enhanced_mr_contrast_stands_in_for_missing_timing():
    unknown = summary(1, "", te=None, tr=None, etl=None)
    t2 = summary(2, "", te=None, tr=None, etl=None, acquisition_contrast="T2")
    assert sequence_label(t2) == "T2 SE" and sequence_label(unknown) == "SE"
    assert choose_series([unknown, t2]).summary.info.number == 2


def test_axial_means_every_normal_within_the_tolerance():
    assert chosen(summary(1, "t2 oblique", angle=39.0)) == "t2 oblique"
    with pytest.raises(NoSuitableSeriesError, match="not axial \\(slice normal 41 degrees"):
        choose_series([summary(1, "t2 oblique", angle=41.0)])


def test_an_only_t1_axial_series_is_taken_with_a_caveat():
    t1 = summary(3, "t1_tse_tra", te=12, tr=600, etl=3)
    choice = choose_series([t1, summary(2, "t2_sag", orientation="sagittal", angle=88)])
    assert choice.reason == (
        "series 3 't1_tse_tra': axial, T1 TSE (TE 12 ms, TR 600 ms, ETL 3), 30 slices, "
        "the best axial MR series in the study although not a T2 TSE"
    )


def test_no_suitable_series_lists_the_study_and_says_how_to_override():
    study = [
        summary(1, "localizer", orientation="sagittal", angle=90.0, sequence="GR", te=3, tr=8, etl=1, slices=3),
        summary(2, "ct_axial", modality="CT", te=None, tr=None, etl=None),
        summary(3, "mixed planes", orientation="mixed", angle=90.0),
        summary(4, "no geometry", orientation="unknown", angle=float("nan"), geometry_problem="f: has no IPP"),
    ]
    with pytest.raises(NoSuitableSeriesError) as caught:
        choose_series(study)
    lines = str(caught.value).splitlines()
    assert lines[0] == "/data/study: no axial MR series to process; the study holds:"
    assert lines[1] == (
        "  series 1 'localizer': sagittal, GRE, 3 slices, UID 1.2.3.1 - "
        "not axial (slice normal 90 degrees from the body axis, at most 40 allowed)"
    )
    assert lines[2] == "  series 2 'ct_axial': axial, SE, 30 slices, UID 1.2.3.2 - modality CT, not MR"
    assert lines[3].endswith("UID 1.2.3.3 - its slices have mixed orientations (up to 90 degrees from axial)")
    assert lines[4].endswith("UID 1.2.3.4 - its slices have no usable geometry")
    assert "--series UID" in lines[5]


def test_override_picks_the_named_series_and_checks_it():
    study = [summary(5, "t2_tse_tra"), summary(3, "t1_tse_tra", te=12, tr=600, etl=3),
             summary(2, "t2_sag", orientation="sagittal", angle=90.0)]
    choice = choose_series(study, series_uid="1.2.3.3")
    assert choice.summary.info.number == 3 and choice.overridden
    assert choice.reason.endswith("30 slices, chosen by its SeriesInstanceUID")
    with pytest.raises(InputError, match=r"series UID 9.9 is not in the study; it holds:\n  series 5 't2_tse_tra'"):
        choose_series(study, series_uid="9.9")
    refused = "series 2 't2_sag' \\(UID 1.2.3.2\\) cannot be processed: not axial"
    with pytest.raises(NoSuitableSeriesError, match=refused):
        choose_series(study, series_uid="1.2.3.2")


def test_axial_series_of_two_patients_are_not_chosen_between():
    with pytest.raises(InputError, match="holds axial MR series of 2 patients"):
        choose_series([summary(1, "t2_tse_tra", patient="aaaa1111"), summary(2, "t2_tse_tra", patient="cccc3333")])
    assert chosen(summary(1, "t2_tse_tra"), summary(2, "t2_sag", orientation="sagittal", angle=90, patient="cccc3333"))


def test_description_words_and_their_scores():
    assert description_words("T2W_TSE_TRA-fs (2)") == ["t2w", "tse", "tra", "fs", "2"]
    words = ("t2w", "tse", "localizer", "sagittal", "mdixon", "tra")
    assert [word_score(w) for w in words] == [3.0, 1.0, -8.0, -3.0, -4.0, 0.0]


def test_series_table_marks_the_choice():
    study = [summary(5, "t2_tse_tra"), summary(2, "t2_sag", orientation="sagittal", angle=90.0, slices=15)]
    choice = choose_series(study)
    lines = format_series_table(study, choice)
    assert lines[0].split() == ["patient", "study", "series", "description", "sequence", "orientation", "slices",
                                "spacing", "mm", "UID"]
    assert lines[1].startswith("*  aaaa1111  bbbb2222  5 ") and "T2 TSE (TE 100 ms, TR 4000 ms, ETL 17)" in lines[1]
    assert lines[1].split()[-3:] == ["30", "0.7x0.7", "1.2.3.5"]
    assert lines[2].startswith("   aaaa1111") and "sagittal" in lines[2]
    assert not any(line.startswith("*") for line in format_series_table(study, None))
