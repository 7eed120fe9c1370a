"""OpenAI CLIP's byte-level BPE tokenisation (`clip.tokenize`, and ViCLIP's `tokenize` with context 32) as
transformers' CLIPTokenizer built from the official merges file `bpe_simple_vocab_16e6.txt.gz` (shipped unchanged
as package data, MIT licence, beside its licence text; another merges file of the same format may be given).

The vocabulary is made from the file as the official tokenizer makes it: the 256 byte symbols (GPT-2's byte to
unicode table), the same with `</w>`, one symbol per merge of lines 1..48894 of the file, then `<|startoftext|>`
and `<|endoftext|>`. The text is cleaned as the official `basic_clean` does (ftfy's `fix_text`, HTML unescaped
twice, stripped) before CLIPTokenizer's whitespace folding, lower-casing and CLIP split pattern; without ftfy
installed, text that `fix_text` could change (anything but printable ASCII, or an HTML entity) is refused rather
than tokenised differently. Ids are `[SOT] + tokens + [EOT]`, cut to the context length with EOT kept last, then
zero-padded.
"""

import functools
import gzip
import html
import os
from pathlib import Path
from typing import List, Optional, Sequence

MERGES_END = 49152 - 256 - 2 + 1  # the official tokenizer reads merge lines 1 .. 48894
START, END = "<|startoftext|>", "<|endoftext|>"
OFFICIAL_BPE = Path(__file__).resolve().parent.parent / "data" / "bpe_simple_vocab_16e6.txt.gz"


def _clean(text: str, name: str) -> str:
    try:
        import ftfy
    except ImportError:
        ftfy = None
    if ftfy is not None:
        text = ftfy.fix_text(text)
    elif "&" in text or any(not (32 <= ord(char) < 127 or char in "\t\n\r") for char in text):
        raise ValueError(
            f"{name}: text {text!r:.120} has characters that the official CLIP tokenizer cleans with ftfy; "
            "install ftfy (`pip install ftfy`) to tokenise it as the official code does"
        )
    return html.unescape(html.unescape(text)).strip()


@functools.lru_cache(maxsize=4)
def _tokenizer(path: str, name: str, mtime_ns: int):
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    try:
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            lines = handle.read().split("\n")
    except (OSError, UnicodeDecodeError, EOFError) as error:
        raise ValueError(f"{name}: BPE vocabulary {path!r} is not a gzip text file of merges: {error}") from None
    merges = [tuple(line.split()) for line in lines[1:MERGES_END]]
    bad = [index + 1 for index, merge in enumerate(merges) if len(merge) != 2]
    if len(lines) < 2 or bad:
        raise ValueError(
            f"{name}: BPE vocabulary {path!r} is not CLIP's merges file (a header line, then one 'a b' pair a line); "
            f"line(s) {bad[:5]} are not pairs"
        )
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [symbol + "</w>" for symbol in symbols] + ["".join(merge) for merge in merges] + [START, END]
    if len(set(vocab)) != len(vocab):
        raise ValueError(f"{name}: BPE vocabulary {path!r} repeats a merge")
    return CLIPTokenizer(vocab={token: index for index, token in enumerate(vocab)}, merges=merges)


def load_bpe(path: Optional[str], name: str):
    """transformers' CLIPTokenizer of the merges file `path` (None: the official one shipped with the pack; cached
    per file); ValueError naming the file when it is missing or not a merges file."""
    path = os.fspath(OFFICIAL_BPE if path is None else path)
    if not os.path.isfile(path):
        raise ValueError(f"{name}: clip_bpe={path!r} is not a file (a CLIP BPE merges file, .txt.gz)")
    return _tokenizer(path, name, os.stat(path).st_mtime_ns)


def tokenize(tokenizer, texts: Sequence[str], context_length: int, name: str):
    """int64 [len(texts), context_length] ids as the official `tokenize(texts, context_length, truncate=True)`."""
    import torch

    start, end = tokenizer.convert_tokens_to_ids([START, END])
    rows: List[List[int]] = []
    for text in texts:
        if not isinstance(text, str):
            raise ValueError(f"{name}: text must be a string, got {type(text).__name__}")
        ids = [start] + tokenizer(_clean(text, name), add_special_tokens=False)["input_ids"] + [end]
        if len(ids) > context_length:
            ids = ids[:context_length]
            ids[-1] = end
        rows.append(ids)
    result = torch.zeros(len(rows), context_length, dtype=torch.long)
    for index, ids in enumerate(rows):
        result[index, : len(ids)] = torch.tensor(ids)
    return result
