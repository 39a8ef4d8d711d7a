"""Convert a GGUF file's vocabulary to a Hugging Face tokenizer.json, for the web tier's prompt counts.

transformers' GGUF converter does it (the well-kept one), but importing transformers imports torch, which a
llama.cpp worker otherwise never loads (and torch's thread pool would compete with llama.cpp's for the cores).
So the worker runs this module in a child process, once per GGUF; the result is cached.

    python -m generation.engine.gguf_tokenizer MODEL.gguf OUT.json
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    text = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).backend_tokenizer.to_str()
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out)


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
