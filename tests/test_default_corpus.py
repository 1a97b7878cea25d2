"""Tests for the built-in template corpus (keras_nmt.quickstart.corpus)."""

from __future__ import annotations

import pytest

from keras_nmt.quickstart import corpus as dc


@pytest.fixture(scope="module")
def many_pairs() -> list[tuple[str, str]]:
    return dc.generate_pairs(25000, seed=0)


def test_languages() -> None:
    assert (dc.SOURCE_LANG, dc.TARGET_LANG) == ("en", "de")


def test_same_seed_same_pairs() -> None:
    assert dc.generate_pairs(2000, seed=3) == dc.generate_pairs(2000, seed=3)


def test_different_seed_different_pairs() -> None:
    assert dc.generate_pairs(2000, seed=0) != dc.generate_pairs(2000, seed=1)


def test_zero_pairs() -> None:
    assert dc.generate_pairs(0) == []


def test_enough_unique_pairs(many_pairs: list[tuple[str, str]]) -> None:
    assert len(many_pairs) == 25000
    assert len({en for en, _ in many_pairs}) == 25000
    assert dc.max_pairs() >= 1_000_000


def test_every_template_is_used(many_pairs: list[tuple[str, str]]) -> None:
    # each template contributes its share: check a few distinctive fragments
    english = "\n".join(en for en, _ in many_pairs)
    german = "\n".join(de for _, de in many_pairs)
    for fragment in ("There are ", " will ", " that ", " saw ", " cents.", "What is ", " away."):
        assert fragment in english, fragment
    for fragment in (" gekauft.", "dass ", " gesehen.", " entfernt.", " Jahre alt.", " gewartet."):
        assert fragment in german, fragment


def test_negative_n_raises() -> None:
    with pytest.raises(ValueError, match="got -1"):
        dc.generate_pairs(-1)


def test_too_many_raises() -> None:
    with pytest.raises(ValueError, match="templates can produce"):
        dc.generate_pairs(dc.max_pairs() + 1)


def test_allocate_spreads_evenly_within_capacities() -> None:
    assert dc._allocate(10, [100, 100, 100]) == [4, 3, 3]
    assert dc._allocate(10, [1, 100, 2]) == [1, 7, 2]
    assert dc._allocate(103, [1, 100, 2]) == [1, 100, 2]
    assert dc._allocate(0, [5, 5]) == [0, 0]


def test_small_templates_exhaust_without_duplicates() -> None:
    tmpl = dc.template("age_person")
    pairs = [tmpl.pair(i) for i in range(tmpl.capacity)]
    assert len({en for en, _ in pairs}) == tmpl.capacity
    with pytest.raises(ValueError):
        tmpl.pair(tmpl.capacity)


def test_sentence_format(many_pairs: list[tuple[str, str]]) -> None:
    for en, de in many_pairs:
        for sentence in (en, de):
            assert sentence and sentence == sentence.strip()
            assert "\n" not in sentence and "\r" not in sentence and "\t" not in sentence
            assert "  " not in sentence
            assert sentence[-1] in ".?"
            assert sentence[0].isupper()
        assert en[-1] == de[-1]
        assert 4 <= len(en.split()) <= 14


def test_known_translations() -> None:
    assert dc.template("past").example(num=21) == (
        "Yesterday I bought twenty-one apples.",
        "Gestern habe ich einundzwanzig Äpfel gekauft.",
    )
    he = dc.SUBJECTS[2]
    assert dc.template("past").example(subj=he, num=42) == (
        "Yesterday he bought forty-two apples.",
        "Gestern hat er zweiundvierzig Äpfel gekauft.",
    )
    book = next(noun for noun in dc.GOODS if noun.en_sg == "book")
    assert dc.template("price_one").example(item=book, num=12) == (
        "The book costs twelve euros.",
        "Das Buch kostet zwölf Euro.",
    )
    assert dc.template("reported").example(subj=he, num=345) == (
        "I think that he bought three hundred and forty-five apples.",
        "Ich glaube, dass er dreihundertfünfundvierzig Äpfel gekauft hat.",
    )
    assert dc.template("arithmetic").example(left=102, right=21) == (
        "What is one hundred and two plus twenty-one?",
        "Was ist einhundertzwei plus einundzwanzig?",
    )


def test_numbers_agree_within_generated_pairs(many_pairs: list[tuple[str, str]]) -> None:
    with_21 = [de for en, de in many_pairs if " twenty-one " in f" {en[:-1]} "]
    assert with_21
    for de in with_21:
        assert "einundzwanzig" in de


def test_unknown_template_and_slot() -> None:
    with pytest.raises(ValueError, match="template name"):
        dc.template("nope")
    with pytest.raises(ValueError, match="unknown"):
        dc.template("past").example(colour="red")


def _read_lines(path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert "\r" not in text and text.endswith("\n")
    return text.split("\n")[:-1]


def test_write_corpus(tmp_path) -> None:
    sizes = {"train": 3000, "valid": 200, "test": 150}
    out = tmp_path / "nested" / "corpus"
    paths = dc.write_corpus(
        out, train_size=sizes["train"], valid_size=sizes["valid"], test_size=sizes["test"]
    )
    assert set(paths) == {"train", "valid", "test"}
    english = {}
    for split, (en_path, de_path) in paths.items():
        assert en_path == out / f"{split}.en" and de_path == out / f"{split}.de"
        en_lines, de_lines = _read_lines(en_path), _read_lines(de_path)
        assert len(en_lines) == len(de_lines) == sizes[split]
        assert all(line.strip() for line in en_lines + de_lines)
        english[split] = set(en_lines)
        assert len(english[split]) == sizes[split]
    assert not english["train"] & english["valid"]
    assert not english["train"] & english["test"]
    assert not english["valid"] & english["test"]

    # line N of .en translates line N of .de, and the files are deterministic
    pairs = dc.generate_pairs(sum(sizes.values()))
    train_en, train_de = paths["train"]
    assert (
        list(zip(_read_lines(train_en), _read_lines(train_de), strict=True))
        == pairs[: sizes["train"]]
    )
    again = dc.write_corpus(
        tmp_path / "again",
        train_size=sizes["train"],
        valid_size=sizes["valid"],
        test_size=sizes["test"],
    )
    for split in sizes:
        for first, second in zip(paths[split], again[split], strict=True):
            assert first.read_bytes() == second.read_bytes()


def test_write_corpus_rejects_negative_size(tmp_path) -> None:
    with pytest.raises(ValueError, match="valid_size"):
        dc.write_corpus(tmp_path, train_size=10, valid_size=-1, test_size=1)
