"""music/labels.py: style, tempo bin and beat/fill from info.csv; unknown for files without labels."""
import pytest

from deeprnn.music import labels as labels_module
from deeprnn.music.labels import LabelVocabulary, PieceLabels, parse_conditions, read_labels, tempo_bin

HEADER = "drummer,session,id,style,bpm,beat_type,time_signature,midi_filename,audio_filename,duration,split\n"


def write_info(folder, rows):
    """A tiny info.csv: rows of (file name, style, bpm, beat_type, split)."""
    lines = [f"d1,d1/s,d1/s/{i},{style},{bpm},{beat},4-4,{name},,10.0,{split}\n"
             for i, (name, style, bpm, beat, split) in enumerate(rows)]
    (folder / "info.csv").write_text(HEADER + "".join(lines))
    return folder


def test_style_is_the_first_word_tempo_a_bin_of_bpm_and_fill_the_beat_type(tmp_path):
    write_info(tmp_path, [("a.mid", "funk/groove1", 96, "beat", "train"),
                          ("b.mid", "latin/brazilian-samba", 140, "fill", "test")])
    table = read_labels(tmp_path)
    assert table[(tmp_path / "a.mid").resolve()] == PieceLabels("funk", 96.0, "beat")
    assert table[(tmp_path / "b.mid").resolve()] == PieceLabels("latin", 140.0, "fill")


@pytest.mark.parametrize("bpm, expected", [(50, "<80"), (79.9, "<80"), (80, "80-100"), (96, "80-100"),
                                           (110, "100-120"), (139, "120-140"), (140, "140+"), (290, "140+")])
def test_tempo_bins_hold_their_lower_edge(bpm, expected):
    assert tempo_bin(bpm) == expected


def test_a_plain_midi_folder_has_no_labels_and_its_files_are_unknown(tmp_path):
    (tmp_path / "x.mid").write_bytes(b"")
    assert read_labels(tmp_path) == {} and read_labels("music21:bach") == {}
    vocabulary = LabelVocabulary.fit(("style", "tempo", "fill"), [PieceLabels()])
    ids = vocabulary.ids(PieceLabels())
    assert [vocabulary.vocabularies[name][i] for name, i in zip(vocabulary.names, ids)] == ["unknown"] * 3


def test_rare_styles_share_the_label_other_and_the_vocabulary_round_trips_through_json():
    train = [PieceLabels("rock")] * 3 + [PieceLabels("funk")] * 2 + [PieceLabels("polka")]
    vocabulary = LabelVocabulary.fit(("style", "fill"), train, min_style_share=0.3)  # 2 of 6 files
    assert vocabulary.vocabularies == {"style": ["funk", "rock", "other", "unknown"],
                                       "fill": ["beat", "fill", "unknown"]}
    assert vocabulary.ids(PieceLabels("polka", 100, "fill")) == [2, 1]
    assert vocabulary.ids(PieceLabels("jazz", None, "beat")) == [2, 0]  # unseen in training: other
    assert LabelVocabulary.from_json(vocabulary.to_json()) == vocabulary
    assert vocabulary.sizes == [4, 3]


def test_the_official_training_split_keeps_ten_styles_by_the_two_percent_rule(groove):
    from deeprnn.music import groove as groove_module
    table = read_labels(groove)
    train = [table[record.path.resolve()] for record in groove_module.load(groove, split="train")]
    styles = LabelVocabulary.fit(("style",), train).vocabularies["style"]
    assert styles == sorted(["rock", "funk", "hiphop", "jazz", "latin", "afrocuban", "punk", "neworleans", "soul",
                             "country"]) + ["other", "unknown"]
    assert labels_module.MIN_STYLE_SHARE == 0.02


def test_asking_for_an_unknown_label_lists_the_known_ones_in_one_line():
    vocabulary = LabelVocabulary.fit(("style",), [PieceLabels("rock")])
    with pytest.raises(ValueError, match=r"^--style 'polka' is not one this model knows; known: rock, other, "
                                         r"unknown$"):
        vocabulary.id_of("style", "polka", "--style")
    with pytest.raises(ValueError, match="not trained with the tempo condition"):
        vocabulary.id_of("tempo", "80-100", "--bpm")


@pytest.mark.parametrize("text, expected", [("style", ("style",)), ("tempo,style", ("style", "tempo")),
                                            ("style, tempo ,fill", ("style", "tempo", "fill")), ("", ())])
def test_condition_flag_parses_in_a_fixed_column_order(text, expected):
    assert parse_conditions(text) == expected


@pytest.mark.parametrize("text", ["mood", "style,style", "style,"])
def test_a_bad_condition_flag_is_one_line_naming_it(text):
    with pytest.raises(ValueError, match="^--condition takes a comma-separated list of style, tempo, fill"):
        parse_conditions(text)
