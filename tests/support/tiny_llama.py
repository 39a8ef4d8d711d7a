"""Tiny, randomly initialised LLaMA checkpoints for fast tests: real LlamaForCausalLM, real tokenizers.

Two flavours, matching what production folders look like:
- Llama 3 style: a byte-level BPE `tokenizer.json` with a ChatML chat template;
- Llama 2 style: a sentencepiece `tokenizer.model` and no chat template.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The city council voted to build a new bridge over the river.",
    "Write a headline for this news story. Reply with the headline only.",
    "Summarise the following text in at most sixty words.",
    "def add(a, b):\n    return a + b\n",
    "城市议会投票决定在河上修建一座新桥。",
    "Local businesses welcomed the decision; construction starts next spring.",
] * 20

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _llama(vocab_size: int, bos: int, eos: int, pad: int, context: int, seed: int):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped-query attention, as in SmolLM2 and Llama 3
        max_position_embeddings=context,
        bos_token_id=bos,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def build_llama3_style(folder: Path, context: int = 256, seed: int = 0) -> Path:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    fast.chat_template = CHATML
    folder.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(folder)
    model = _llama(tok.get_vocab_size(), fast.bos_token_id, fast.eos_token_id, fast.pad_token_id, context, seed)
    model.save_pretrained(folder)
    return folder


def build_llama2_style(folder: Path, context: int = 256, seed: int = 0) -> Path:
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(CORPUS), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=200,
        model_type="bpe",
        character_coverage=1.0,
        bos_id=1,
        eos_id=2,
        unk_id=0,
        pad_id=-1,
        minloglevel=2,
    )
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(
        '{"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",'
        ' "add_bos_token": true, "add_eos_token": false}'
    )
    model = _llama(200, 1, 2, 0, context, seed)
    model.save_pretrained(folder)
    return folder
