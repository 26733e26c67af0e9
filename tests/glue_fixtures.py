"""A tiny GLUE folder in each task's exact file format (download_glue_data.py layout).

Every quirk of the real files is here: CoLA's header-less train/dev files, MRPC's byte-order mark
and literal (unbalanced) quotes, STS-B's ten columns and float scores, QQP's malformed row, MNLI's
parse columns and five annotator labels on dev, test files without labels, the AX diagnostic file.
Usable from any test: ``write_glue_dir(tmp_path)`` returns the folder to pass as the GLUE source.
"""

from __future__ import annotations

from pathlib import Path

MNLI_HEADER = (
    "index promptID pairID genre sentence1_binary_parse sentence2_binary_parse "
    "sentence1_parse sentence2_parse sentence1 sentence2"
).split()
STSB_HEADER = "index genre filename year old_index source1 source2 sentence1 sentence2 score".split()
BOM = "\ufeff"

# The MRPC strings the tests check verbatim: quotes are text, some of them unbalanced.
MRPC_QUOTED = 'Amrozi accused his brother, whom he called "the witness", of deliberately distorting it.'
MRPC_UNBALANCED = '"The foodservice pie business does not fit our long-term growth strategy.'


def _mnli_row(index: int, premise: str, hypothesis: str, genre: str) -> list[str]:
    binary = f"( {premise} )", f"( {hypothesis} )"
    parses = f"(ROOT (S {premise}))", f"(ROOT (S {hypothesis}))"
    return [str(index), f"{31193 + index}", f"{31193 + index}n", genre, *binary, *parses, premise, hypothesis]


def _mnli_file(rows: list[tuple[str, str, str, tuple[str, ...]]], label_columns: list[str]) -> list[list[str]]:
    lines = [MNLI_HEADER + label_columns]
    for index, (premise, hypothesis, genre, labels) in enumerate(rows):
        lines.append(_mnli_row(index, premise, hypothesis, genre) + list(labels))
    return lines


MNLI_TRAIN = [
    ("Conceptually cream skimming has two basic dimensions.", "Product and geography matter.", "government"),
    ("You don't know that.", "You are sure of it.", "telephone"),
    ("The cat sat on the mat.", "A cat is sitting.", "fiction"),
    ("He went to the store.", "He may have bought milk.", "fiction"),
]
MNLI_TRAIN_LABELS = ["neutral", "contradiction", "entailment", "neutral"]

FILES: dict[str, list[list[str]]] = {
    # CoLA: no header row; source, label, original label ("*" when unacceptable), sentence.
    "CoLA/train.tsv": [
        ["gj04", "1", "", "Our friends won't buy this analysis, let alone the next one we propose."],
        ["gj04", "0", "*", "They drank the pub."],
        ["r-67", "1", "", 'The more you eat, the "fatter" you get.'],
    ],
    "CoLA/dev.tsv": [
        ["gj04", "1", "", "The sailors rode the breeze clear of the rocks."],
        ["gj04", "0", "*", "The more does Bill smoke, the more Susan hates him."],
    ],
    "CoLA/test.tsv": [["index", "sentence"], ["0", "Bill whistled past the house."], ["1", "The car honked."]],
    # SST-2: header; sentences are tokenized and end with a space before the tab.
    "SST-2/train.tsv": [
        ["sentence", "label"],
        ["hide new secretions from the parental units ", "0"],
        ["that loves its characters ", "1"],
        ["it 's a charming and often affecting journey . ", "1"],
    ],
    "SST-2/dev.tsv": [["sentence", "label"], ["unflinchingly bleak and desperate ", "0"], ["a gem ", "1"]],
    "SST-2/test.tsv": [["index", "sentence"], ["0", "uneasy mishmash of styles and genres ."], ["1", "fun ."]],
    # MRPC: a byte-order mark, header with spaces in names, literal quotes.
    "MRPC/train.tsv": [
        [BOM + "Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
        ["1", "702876", "702977", MRPC_QUOTED, 'Referring to him as only "the witness", Amrozi accused him.'],
        ["0", "2108705", "2108831", "Yucaipa owned Dominick's before 1998.", "Yucaipa bought Dominick's in 1995."],
        ["1", "1355540", "1355592", "He said the pie business doesn't fit.", MRPC_UNBALANCED],
    ],
    "MRPC/dev.tsv": [
        [BOM + "Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
        ["1", "1", "2", "The stock rose $2.11.", "The stock gained $2.11."],
        ["0", "3", "4", 'He said "no".', "He agreed."],
    ],
    "MRPC/test.tsv": [
        [BOM + "index", "#1 ID", "#2 ID", "#1 String", "#2 String"],
        ["0", "1089874", "1089925", "PCCW's chief operating officer left.", 'He "resigned" today.'],
        ["1", "3019446", "3019327", "The world's two largest makers.", "Two big makers."],
    ],
    # STS-B: ten columns, float score.
    "STS-B/train.tsv": [
        STSB_HEADER,
        [
            "0",
            "main-captions",
            "MSRvid",
            "2012test",
            "0001",
            "none",
            "none",
            "A plane is taking off.",
            "An air plane is taking off.",
            "5.000",
        ],
        [
            "1",
            "main-captions",
            "MSRvid",
            "2012test",
            "0004",
            "none",
            "none",
            "A man plays a flute.",
            "A man is playing a flute.",
            "3.800",
        ],
        ["2", "main-news", "headlines", "2013", "0011", "none", "none", "Stocks fall.", "Cats sleep.", "0.000"],
    ],
    "STS-B/dev.tsv": [
        STSB_HEADER,
        [
            "0",
            "main-captions",
            "MSRvid",
            "2012test",
            "0000",
            "none",
            "none",
            "A man with a hard hat is dancing.",
            "A man wearing a hard hat is dancing.",
            "5.000",
        ],
        [
            "1",
            "main-captions",
            "MSRvid",
            "2012test",
            "0002",
            "none",
            "none",
            "A child rides a horse.",
            "A horse is ridden.",
            "2.5",
        ],
    ],
    "STS-B/test.tsv": [
        STSB_HEADER[:-1],
        [
            "0",
            "main-captions",
            "MSRvid",
            "2012test",
            "0024",
            "none",
            "none",
            "A girl is styling her hair.",
            "A girl is brushing her hair.",
        ],
    ],
    # QQP: id/qid columns, 0/1 is_duplicate; the third train row is malformed (missing columns).
    "QQP/train.tsv": [
        ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
        ["133273", "213221", "213222", "How is the life of a math student?", "Which is the best book?", "0"],
        ["402555", "536040", "536041", "How do I control my horny emotions?", "How do you control them?", "1"],
        ["360472", "364011", "490273", "What causes stool color to change?"],
        ["150662", "155721", "7256", "What can one do after MBBS?", "What do i do after my MBBS?", "1"],
    ],
    "QQP/dev.tsv": [
        ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
        [
            "201359",
            "303345",
            "303346",
            "Why are African-Americans so beautiful?",
            "Why are hispanics so beautiful?",
            "0",
        ],
        ["263843", "69383", "380476", "I want to pursue PhD in Computer Science?", "How do I do a PhD?", "1"],
    ],
    "QQP/test.tsv": [["id", "question1", "question2"], ["0", "Would Trump win?", "Could Trump win?"]],
    # MNLI: parse columns; train has label1 + gold_label, dev has label1..label5 + gold_label.
    "MNLI/train.tsv": _mnli_file(
        [(p, h, g, (label, label)) for (p, h, g), label in zip(MNLI_TRAIN, MNLI_TRAIN_LABELS, strict=True)],
        ["label1", "gold_label"],
    ),
    "MNLI/dev_matched.tsv": _mnli_file(
        [
            (
                "The new rights are nice enough.",
                "Everyone really likes them.",
                "slate",
                ("neutral", "entailment", "neutral", "neutral", "neutral", "neutral"),
            ),
            ("This site includes a list.", "The site has no list.", "government", ("contradiction",) * 6),
        ],
        ["label1", "label2", "label3", "label4", "label5", "gold_label"],
    ),
    "MNLI/dev_mismatched.tsv": _mnli_file(
        [
            ("Your contribution helped make it possible.", "Your contribution helped.", "letters", ("entailment",) * 6),
            ("The answer is no.", "The answer is yes.", "verbatim", ("contradiction",) * 6),
            ("It rained.", "It was wet.", "oup", ("entailment",) * 6),
        ],
        ["label1", "label2", "label3", "label4", "label5", "gold_label"],
    ),
    "MNLI/test_matched.tsv": _mnli_file([("Hierbas, ans seco.", "Hierbas is a name.", "slate", ())], []),
    "MNLI/test_mismatched.tsv": _mnli_file(
        [("What have you decided?", "What are you doing?", "letters", ()), ("Yes.", "No.", "oup", ())], []
    ),
    # QNLI, RTE: text labels; WNLI: 0/1 labels; tests have no label column.
    "QNLI/train.tsv": [
        ["index", "question", "sentence", "label"],
        ["0", "When did the third Digimon series begin?", "Unlike the two seasons before it...", "not_entailment"],
        ["1", "Which missile batteries often have individual launchers?", "When MANPADS is operated...", "entailment"],
    ],
    "QNLI/dev.tsv": [
        ["index", "question", "sentence", "label"],
        [
            "0",
            "What came into force after the new constitution?",
            "The new constitution came into force.",
            "entailment",
        ],
    ],
    "QNLI/test.tsv": [["index", "question", "sentence"], ["0", "What is a prime?", "A prime is a number."]],
    "RTE/train.tsv": [
        ["index", "sentence1", "sentence2", "label"],
        ["0", "No Weapons of Mass Destruction Found in Iraq Yet.", "Weapons were found.", "not_entailment"],
        ["1", "A place of sorrow, after Pope John Paul II died.", "Pope John Paul II died.", "entailment"],
    ],
    "RTE/dev.tsv": [
        ["index", "sentence1", "sentence2", "label"],
        ["0", "Dana Reeve died of lung cancer.", "Christopher Reeve had an accident.", "not_entailment"],
        ["1", "Yet, we now are discovering it.", "We are discovering it.", "entailment"],
    ],
    "RTE/test.tsv": [["index", "sentence1", "sentence2"], ["0", "Mangla was summoned.", "Mangla was summoned."]],
    "WNLI/train.tsv": [
        ["index", "sentence1", "sentence2", "label"],
        ["0", "I stuck a pin through a carrot. When I pulled it out, it had a hole.", "The carrot had a hole.", "1"],
        [
            "1",
            "John couldn't see the stage with Billy in front of him because he is so short.",
            "John is so short.",
            "1",
        ],
        ["2", "The police arrested all of the gang members.", "The police were trying to stop the gang.", "0"],
    ],
    "WNLI/dev.tsv": [
        ["index", "sentence1", "sentence2", "label"],
        ["0", "The drain is clogged with hair. It has to be cleaned.", "The hair has to be cleaned.", "0"],
    ],
    "WNLI/test.tsv": [["index", "sentence1", "sentence2"], ["0", "Maude and Dora had seen the trains.", "Dora saw."]],
    # AX: the diagnostic set, unlabelled.
    "diagnostic/diagnostic.tsv": [
        ["index", "sentence1", "sentence2"],
        ["0", "The cat sat on the mat.", "The cat did not sit on the mat."],
        ["1", "When you've got no snow, it's really hard to learn a snow sport.", "It's hard to learn skiing."],
    ],
}


def write_glue_dir(root: Path) -> Path:
    """Write the GLUE fixture folder under ``root`` and return it (``root / "glue"``)."""
    glue = Path(root) / "glue"
    for relative, rows in FILES.items():
        path = glue / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        # Real GLUE files end with a newline except CoLA's (no trailing newline).
        ending = "" if relative.startswith("CoLA/") else "\n"
        path.write_text("\n".join("\t".join(row) for row in rows) + ending, encoding="utf-8", newline="")
    return glue
