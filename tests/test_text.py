"""Texts: the tokenizer, reading and bad files, the split, the train-only vocabulary, the models
(padding never changes a logit; packed and padded recurrent runs agree), pretrained vectors,
ONNX export and predict."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from text_data import make_texts, write_texts
from torchstages.errors import UserError
from torchstages.evaluation.report import _escape
from torchstages.params.base import load_section
from torchstages.params.build_dataset import BuildDatasetParams
from torchstages.params.split import SplitParams
from torchstages.text.build import build_texts, build_vocab
from torchstages.text.split import split_texts
from torchstages.text.store import load_text_split, load_vocab
from torchstages.text.tokenize import UNK, duplicate_key, encode_texts, tokenize, tokenizer_rule

WORDS = tokenizer_rule("word", lowercase=True)


def split_and_build(raw: Path, root: Path, split: dict | None = None, **text) -> Path:
    params = SplitParams.model_validate({"kind": "text", "seed": 1, **(split or {})})
    split_texts(raw, root / "splits", params)
    build = BuildDatasetParams.model_validate({"text": text})
    build_texts(build, raw, root / "splits", root / "processed")
    return root / "processed"


def test_tokenizer_normalises_splits_words_and_characters():
    assert tokenize("Ｆｕｌｌ-width ﬁne, don't STOP!", WORDS) == [
        "full", "-", "width", "fine", ",", "don't", "stop", "!",
    ]  # fmt: skip
    assert tokenize("Don't", tokenizer_rule("word", lowercase=False)) == ["Don't"]
    assert tokenize("  a\t b  ", tokenizer_rule("char", lowercase=True)) == ["a", " ", "b"]
    assert duplicate_key("Hello,   WORLD") == duplicate_key("hello , world")
    assert duplicate_key("hello world") != duplicate_key("hello, world")


def test_encode_pads_cuts_and_counts_unknown_tokens():
    index = {"<pad>": 0, "<unk>": 1, "a": 2, "b": 3}
    ids, lengths, counts = encode_texts(["a b zz", "b a b a b", ""], WORDS, index, 4)
    assert ids.dtype == lengths.dtype == np.int64
    assert ids.tolist() == [[2, 3, UNK, 0], [3, 2, 3, 2], [0, 0, 0, 0]]
    assert lengths.tolist() == [3, 4, 0]
    assert counts == {"tokens": 8, "unknown": 1, "truncated": 1}


def test_vocab_keeps_frequent_tokens_in_a_stable_order():
    texts = [["b", "a", "c"], ["a", "b"], ["a", "d"]]
    assert build_vocab(texts, min_freq=2, max_size=10) == ["<pad>", "<unk>", "a", "b"]
    assert build_vocab(texts, min_freq=1, max_size=3) == ["<pad>", "<unk>", "a", "b", "c"]


def test_split_keeps_normalised_duplicates_together_and_reports_them(tmp_path):
    frame = make_texts(150)
    frame.loc[5, "text"] = "   "  # empty after stripping: dropped and counted
    processed = split_and_build(write_texts(frame, tmp_path / "raw").parent, tmp_path)
    summary = json.loads((tmp_path / "splits/summary.json").read_text())
    assert (summary["kind"], summary["features"], summary["target"]) == ("text", ["text"], "label")
    assert summary["empty_texts_dropped"] == 1 and sum(summary["totals"].values()) == 149
    assert summary["duplicates"] == {"groups": 1, "extra_rows": 2, "label_conflicts": 0}
    where = {}
    for name in ("train", "val", "test"):
        for line in (tmp_path / f"splits/{name}.csv").read_text().splitlines()[1:]:
            where[int(line.split(",")[0])] = name
    assert where[0] == where[148] == where[149]  # the text, shouted, and spaced out
    # stratified: every class in every split
    assert all(len(summary["counts"][s]) == 3 for s in ("train", "val", "test"))
    meta = json.loads((processed / "meta.json").read_text())
    assert meta["kind"] == "text" and meta["classes"] == ["food", "sport", "weather"]


def test_equal_texts_under_different_labels_are_listed_by_line(tmp_path, caplog):
    frame = make_texts(150)
    other = {"food": "sport", "sport": "weather", "weather": "food"}
    frame.loc[149, "label"] = other[frame.label[0]]  # the shouted copy of text 0, relabelled
    with caplog.at_level("WARNING", logger="torchstages"):
        summary = split_texts(
            write_texts(frame, tmp_path / "raw").parent,
            tmp_path / "s",
            SplitParams.model_validate({"kind": "text"}),
        )
    assert summary["duplicates"]["label_conflicts"] == 1
    assert summary["duplicates"]["label_conflict_lines"] == [[2, 150, 151]]
    assert "split: 1 group of equal texts under different labels" in caplog.text
    assert "the first, by line: 2, 150, 151" in caplog.text


def test_vocabulary_and_max_len_come_from_the_train_split_only(tmp_path):
    frame = make_texts(150)
    for i in range(12):  # long texts, each with a word no other text has
        frame.loc[i, "text"] = f"unique{i} " * 40
    raw = write_texts(frame, tmp_path / "raw").parent
    processed = split_and_build(raw, tmp_path, min_freq=1)
    split_of = {}
    for name in ("train", "val", "test"):
        for line in (tmp_path / f"splits/{name}.csv").read_text().splitlines()[1:]:
            split_of[int(line.split(",")[0])] = name
    vocab = load_vocab(processed)
    meta = json.loads((processed / "meta.json").read_text())
    assert vocab[:2] == ["<pad>", "<unk>"]
    assert {f"unique{i}" in vocab for i in range(12) if split_of[i] == "train"} == {True}
    assert {f"unique{i}" in vocab for i in range(12) if split_of[i] != "train"} == {False}
    train_lengths = [
        len(tokenize(frame.text[r], WORDS)) for r, s in split_of.items() if s == "train"
    ]
    assert meta["max_len"] == int(np.ceil(np.percentile(train_lengths, 95)))
    assert meta["unknown_rate"]["train"] == 0 and meta["unknown_rate"]["test"] > 0
    tokens, lengths, labels = load_text_split(processed, "test")
    assert tokens.dtype == np.int64 and tokens.shape[1] == meta["max_len"]
    padded = np.arange(tokens.shape[1])[None, :] >= lengths[:, None]
    assert (tokens[padded] == 0).all() and (tokens[~padded] > 0).all()
    again = split_and_build(raw, tmp_path / "again", min_freq=1)
    for name in sorted(p.name for p in processed.iterdir()):
        assert (again / name).read_bytes() == (processed / name).read_bytes(), name
    # a vocabulary limit the train split never reaches builds the same files: train, validate,
    # test and export do not rerun for it (meta.json held the params, not what they made)
    roomier = split_and_build(raw, tmp_path / "roomier", min_freq=1, max_size=10 * len(vocab))
    for name in sorted(p.name for p in processed.iterdir()):
        assert (roomier / name).read_bytes() == (processed / name).read_bytes(), name


def test_build_refuses_texts_appended_since_the_split(tmp_path):
    frame = make_texts(150)
    raw = write_texts(frame, tmp_path / "raw").parent
    split_texts(raw, tmp_path / "splits", SplitParams.model_validate({"kind": "text"}))
    write_texts(pd.concat([frame, frame.tail(1)]), raw)
    with pytest.raises(UserError, match="texts.csv: has 151 rows, the split stage read 150"):
        build_texts(BuildDatasetParams(), raw, tmp_path / "splits", tmp_path / "processed")


def test_a_quoted_text_over_lines_that_end_like_a_label_is_read(tmp_path):
    """'..., no' inside a properly quoted letter is text, not a row the quote swallowed."""
    letter = '"Dear team,\nI would buy again, no\nthanks",yes\n'
    others = "".join(f"fine {i},no\nok {i},yes\n" for i in range(3))
    (tmp_path / "t.csv").write_text("text,label\n" + letter + others)
    params = SplitParams.model_validate({"kind": "text"})
    assert split_texts(tmp_path, tmp_path / "out", params)["totals"]["train"] > 0


def test_labels_written_several_ways_are_named(tmp_path):
    labels = ["spam", "Spam", "ham", "1", "1.0"]
    rows = "".join(f"text number {i},{labels[i % 5]}\n" for i in range(50))
    (tmp_path / "t.csv").write_text("text,label\n" + rows)
    params = SplitParams.model_validate({"kind": "text"})
    similar = split_texts(tmp_path, tmp_path / "out", params)["similar_classes"]
    assert similar == [["1", "1.0"], ["Spam", "spam"]]


@pytest.mark.parametrize(
    ("content", "split", "message"),
    [
        (b"id,words,label\n1,hi there,a\n", {"text": {"text": "body"}}, "no column 'body'"),
        (b"id,text\n1,hi\n", {}, "no column named label"),
        (b"text,label\n" + b"hello there,a\n" * 9, {}, "only one class"),
        (  # never closed, after a text over two lines: named by the file's line
            b'text,label\n"two\nlines",a\nhi,b\n"open,a\nbye,b\n',
            {},
            r"t.csv: line 5: a quote opened here is never closed \(set split.text.quoting: none",
        ),
        (b'text,label\n"broken,a\nbye,b\nthird,a\n"fine",b\n', {}, "line 2: a quote opened"),
        (  # the same with a space after every comma, which is not part of the cells
            b'text, label\nhi, b\n"broken, a\nbye, b\nthird, a\nfine", b\n',
            {},
            "line 3: a quote opened",
        ),
        (b"text,label\nhi,a\ncaf\xe9,b\n", {}, r"line 3 is not valid UTF-8 .*split.text.encoding"),
        (  # already told the encoding: no hint to set it
            b"text,label\nhi,a\ncaf\x81,b\n",
            {"text": {"encoding": "cp1252"}},
            r"line 3 is not valid cp1252 \(save the file as UTF-8\)$",
        ),
        (  # quotes are plain characters: quoting the cell is no advice
            b"text,label\nhi,a\nx, y and z,b\n",
            {"text": {"quoting": "none"}},
            r"line 3: 3 fields where the header has 2 \(quotes are plain characters here",
        ),
        (b"text,label\nhi,a\n ,b\n", {"text": {"empty": "error"}}, "line 3: the text"),
        (  # "Hi there" and "hi  there" are one text to the split: b fills two splits
            b"text,label\n"
            + b"".join(b"a%d,a\n" % i for i in range(20))
            + b"Hi there,b\nhi  there,b\nbye,b\n",
            {},
            r"class 'b' has no text in the (val|test) split: its 3 texts include texts equal but",
        ),
    ],
)
def test_bad_text_files_are_one_line_errors(tmp_path, content, split, message):
    (tmp_path / "t.csv").write_bytes(content)
    params = SplitParams.model_validate({"kind": "text", **split})
    with pytest.raises(UserError, match=message) as info:
        split_texts(tmp_path, tmp_path / "out", params)
    assert "\n" not in str(info.value)


def test_encoding_bom_and_the_longest_column_as_text(tmp_path):
    rows = "".join(f"{i},caf\xe9 au lait number {i},{'ab'[i % 2]}\n" for i in range(12))
    (tmp_path / "t.csv").write_bytes(("code,words,label\n" + rows).encode("latin-1"))
    params = SplitParams.model_validate({"kind": "text", "text": {"encoding": "latin-1"}})
    summary = split_texts(tmp_path, tmp_path / "out", params)
    assert summary["features"] == ["words"] and summary["totals"]["train"] > 0
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbftext,label\n" + b"".join(
        f"text {i},{'ab'[i % 2]}\n".encode() for i in range(12)
    ))  # fmt: skip
    assert split_texts(tmp_path, tmp_path / "out2", SplitParams(kind="text"))["target"] == "label"


def test_text_params_are_typed_and_unknown_keys_rejected(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("build_dataset:\n  text:\n    min_frq: 3\n")
    with pytest.raises(UserError, match="did you mean 'min_freq'"):
        load_section(BuildDatasetParams, "build_dataset", path)
    path.write_text("split:\n  text:\n    encoding: klingon\n")
    said = r"split.text.encoding: unknown text encoding \(known: e.g. utf-8, latin-1, cp1252\) "
    with pytest.raises(UserError, match=said + r"\(got 'klingon'\)$"):  # the value said once
        load_section(SplitParams, "split", path)
    path.write_text("build_dataset:\n  text:\n    max_len: 0\n")
    with pytest.raises(UserError, match="max_len"):
        load_section(BuildDatasetParams, "build_dataset", path)


SPECS = [
    {"name": "lstm"},
    {"name": "gru", "pooling": "last", "layers": 2},
    {"name": "lstm", "bidirectional": False, "pooling": "mean"},
    {"name": "textcnn", "kernel_sizes": [2, 5]},
    {"name": "transformer", "embedding_dim": 16, "heads": 2},
]


def test_the_recurrent_spec_shared_with_series_takes_text_defaults():
    from torchstages.models import build_text_model, parse_spec

    info = {"vocab_size": 30, "max_len": 12}
    lstm = build_text_model(parse_spec({"name": "lstm"}), info, 2)
    first = lstm.layers[0][0]
    assert (type(first), first.hidden_size, lstm.dropout.p) == (torch.nn.LSTM, 32, 0.3)
    gru = build_text_model(parse_spec({"name": "gru", "hidden": 8, "dropout": 0.0}), info, 2)
    first = gru.layers[0][0]
    assert (type(first), first.hidden_size, gru.dropout.p) == (torch.nn.GRU, 8, 0.0)


@pytest.mark.parametrize("raw_spec", SPECS, ids=lambda s: "-".join(map(str, s.values())))
def test_padding_never_changes_a_logit(raw_spec):
    from torchstages.models import build_text_model, parse_spec

    torch.manual_seed(0)
    model = build_text_model(parse_spec(raw_spec), {"vocab_size": 30, "max_len": 12}, 3).eval()
    lengths = torch.tensor([1, 4, 7, 0])
    tokens = torch.randint(2, 30, (4, 7)) * (torch.arange(7) < lengths.unsqueeze(1))
    wider = torch.cat([tokens, torch.zeros(4, 5, dtype=torch.long)], dim=1)
    with torch.no_grad():
        out = model(tokens, lengths)
        torch.testing.assert_close(model(wider, lengths), out)
        if hasattr(model, "packed"):  # the padded run the ONNX export uses
            model.packed = False
            torch.testing.assert_close(model(wider, lengths), out)
    assert out.shape == (4, 3)


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_onnx_and_pt2_exports_match_pytorch_on_every_length(tmp_path, name):
    from torchstages.deploy.export import export_formats
    from torchstages.deploy.runtime import load_runner
    from torchstages.models import build_text_model, parse_spec
    from torchstages.params.export import ExportParams
    from torchstages.text.export import text_exportable

    torch.manual_seed(0)
    card = {
        "kind": "text", "vocab_size": 40, "max_len": 10, "task": "classification",
        "target": "label", "text_column": "text", "classes": ["a", "b"], "tokenizer": WORDS,
        "encoding": "utf-8", "quoting": "csv",
    }  # fmt: skip
    spec = parse_spec(
        {"name": name, "embedding_dim": 16, **({"heads": 2} if name != "lstm" else {})}
    )
    model = build_text_model(spec, card, 2).eval()
    lengths = torch.arange(0, 11)
    tokens = torch.randint(2, 40, (11, 10)) * (torch.arange(10) < lengths.unsqueeze(1))
    with torch.no_grad():
        expected = model(tokens, lengths).numpy()
    vocab = ["<pad>", "<unk>", *(f"w{i}" for i in range(38))]
    exp = text_exportable(model, card, vocab)
    export_formats(exp, card, ExportParams(formats=("onnx", "pt2")), tmp_path)
    for name in ("model.onnx", "model.pt2"):
        runner = load_runner(tmp_path / name)
        got = runner.run({"tokens": tokens.numpy(), "lengths": lengths.numpy()})
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=name)
        meta = runner.metadata
        assert json.loads(meta["vocab"]) == vocab and json.loads(meta["tokenizer"]) == WORDS


def test_pretrained_vectors_fill_the_words_they_know(tmp_path):
    from torchstages.models import build_text_model, parse_spec
    from torchstages.models.text import read_vectors

    path = tmp_path / "vectors.txt"
    path.write_text("3 2\nhello 0.5 -1\nworld 2 3\nhello 9 9\n")  # fastText header; first wins
    vocab = ["<pad>", "<unk>", "hello", "world", "unseen"]
    vectors, found = read_vectors(path, vocab, 2)
    assert found.tolist() == [False, False, True, True, False]
    assert vectors[2].tolist() == [0.5, -1.0]
    spec = parse_spec({"name": "textcnn", "embedding_dim": 2, "vectors": str(path)})
    model = build_text_model(spec, {"vocab_size": 5, "max_len": 4}, 2, vocab=vocab)
    assert model.vectors_found == {"found": 2, "words": 3}
    assert model.embedding.weight[3].tolist() == [2.0, 3.0]
    assert model.embedding.weight[0].abs().sum() == 0
    with pytest.raises(UserError, match="embedding_dim is 3"):
        read_vectors(path, vocab, 3)
    with pytest.raises(UserError, match=r"vectors: .*: is a folder; give the \.txt or \.vec file"):
        read_vectors(tmp_path, vocab, 2)


def test_report_escapes_texts_and_predict_reads_every_input_kind(tmp_path):
    from torchstages.text.predict import read_inputs

    assert _escape("a|b *x* <i>") == r"a\|b \*x\* \<i\>"
    lines = tmp_path / "texts.txt"
    lines.write_text("first text\n\n  \nsecond, text\n")
    table = write_texts(make_texts(6), tmp_path)
    found = read_inputs(["given"], [str(lines), str(table)], None, {"text_column": "text"})
    assert [w for w, _, _ in found[:3]] == ["text 1", f"{lines}:1", f"{lines}:4"]
    assert found[3] == (f"{table}:2", make_texts(6).text[0], []) and len(found) == 9
    with pytest.raises(UserError, match="no column 'body'"):
        read_inputs([], [str(table)], "body", {"text_column": "text"})
    lines.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(UserError, match=r"texts.txt: line 2 is not valid UTF-8"):
        read_inputs([], [str(lines)], None, {"text_column": "text"})
    lines.write_text("\n  \n")  # named, not "no texts (give --text, a .txt file ...)"
    with pytest.raises(UserError, match=r"texts.txt: no text in it \(every line is blank\)"):
        read_inputs(["given"], [str(lines)], None, {"text_column": "text"})


def test_predict_reads_files_as_the_training_file_was_read(tmp_path):
    """A model trained with split.text quoting: none and latin-1 reads new files that way: a
    quote is a character (it swallowed the next lines under csv quoting), é is latin-1."""
    from torchstages.text.predict import read_inputs

    table = tmp_path / "t.tsv"
    table.write_bytes(
        'text\tlabel\n"caf\xe9 at noon\ta\nsecond\tb\nthird "x" end\ta\n'.encode("latin-1")
    )
    meta = {"text_column": "text", "encoding": "latin-1", "quoting": "none"}
    found = read_inputs([], [str(table)], None, meta)
    assert [(w, t) for w, t, _ in found] == [
        (f"{table}:2", '"caf\xe9 at noon'),
        (f"{table}:3", "second"),
        (f"{table}:4", 'third "x" end'),
    ]
    lines = tmp_path / "t.txt"
    lines.write_bytes("d\xe9j\xe0 vu\n".encode("latin-1"))
    assert read_inputs([], [str(lines)], None, meta)[0][1] == "d\xe9j\xe0 vu"


def test_rows_after_a_text_with_line_breaks_are_named_by_the_line_they_start_on(tmp_path):
    from torchstages.tables.split import read_table_split
    from torchstages.text.predict import read_inputs

    frame = make_texts(60)
    frame.loc[::7, "text"] += '\nthen "left",\nquietly'  # a quoted field over three lines
    path = write_texts(frame, tmp_path / "raw")
    physical = path.read_text().split("\n")
    split_texts(path.parent, tmp_path / "s", SplitParams.model_validate({"kind": "text"}))
    named = {}
    for name in ("train", "val", "test"):
        for row, _, _, line in read_table_split(tmp_path / "s" / f"{name}.csv"):
            named[row] = line
    assert len(named) == 60 and named[8] == 2 + 8 + 2 * 2  # rows 0 and 7 hold two breaks each
    assert all(physical[line - 1].startswith(frame.id[row] + ",") for row, line in named.items())
    found = read_inputs([], [str(path)], None, {"text_column": "text"})
    assert [w for w, _, _ in found] == [f"{path}:{named[r]}" for r in range(60)]


def test_two_classes_train_an_lstm_and_evaluate_in_process(tmp_path, caplog):
    """Two classes through the library functions the stages call: an lstm trains (packed
    sequences) and the test evaluation writes metrics, the 2-class curves and the wrong texts."""
    from torchstages.evaluation.evaluate import EvalPaths, evaluate_split
    from torchstages.params.evaluate import EvaluateParams
    from torchstages.params.train import TrainParams
    from torchstages.training.loop import TrainOutputs, train

    raw = write_texts(make_texts(120, classes=2), tmp_path / "raw").parent
    processed = split_and_build(raw, tmp_path, min_freq=1)
    models = tmp_path / "models"
    outputs = TrainOutputs(
        models / "m.safetensors", models / "m.json", models / "c.pt", tmp_path / "live"
    )
    vectors = tmp_path / "glove.txt"  # two known words, 32 numbers each (the default width)
    vectors.write_text(
        "".join(f"{w} {' '.join(['0.1'] * 32)}\n" for w in ("goal", "zebra", "oven"))
    )
    model = {"name": "lstm", "vectors": str(vectors)}
    params = {"epochs": 12, "batch_size": 16, "threads": 1, "model": model}
    card = train(TrainParams.model_validate(params), processed, outputs)
    words = len(load_vocab(processed)) - 2
    assert card["kind"] == "text" and card["vocab_size"] == words + 2
    assert card["vectors_found"] == {"found": 2, "words": words}
    assert card["architecture"]["hidden"] == 32 and card["architecture"]["dropout"] == 0.3
    paths = EvalPaths(
        processed, tmp_path / "splits", outputs.weights, outputs.card,
        tmp_path / "test.json", tmp_path / "plots", predictions=tmp_path / "pred.csv",
    )  # fmt: skip
    with caplog.at_level("INFO", logger="torchstages"):
        metrics = evaluate_split("test", EvaluateParams(bootstrap_resamples=0), paths)
    assert metrics["accuracy"] > 0.8 and metrics["samples"] == 18
    assert " on 18 texts -> " in caplog.text
    assert (tmp_path / "plots/roc.csv").read_text().count("\n") > 2
    header = (tmp_path / "plots/wrong_texts.csv").read_text().splitlines()[0]
    assert header == "id,actual,predicted,probability,text"
    mistakes = (tmp_path / "plots/mistakes.csv").read_text().splitlines()
    assert mistakes[0] == "id,actual,predicted,probability"  # named as in predictions.csv
    assert all(m.startswith("line ") for m in mistakes[1:])
    # a model evaluated on data of another kind is named as such, not as differing classes
    other = tmp_path / "other"
    shutil.copytree(processed, other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "kind": "table"}))
    with pytest.raises(
        UserError, match=r"m.json: the model's kind is 'text', .*other/meta.json's is 'table'"
    ):
        evaluate_split("test", EvaluateParams(), dataclasses.replace(paths, processed=other))
