#!/usr/bin/env python3
"""Builds the tokenizer equivalence test data in OUT_DIR (no network):
  corpus.jsonl                 >= 2,000 generated lines (JSON strings): whitespace runs, digits, emoji, CJK,
                               accents (composed and decomposed), contractions, code, special tokens in text
  <name>/tokenizer.json        byte-level BPEs trained here with Hugging Face `tokenizers`:
                                 gpt2    ByteLevel(use_regex) pre-tokenizer, GPT-2 regex
                                 llama3  Split(Llama 3 regex, \\p{N}{1,3}) + ByteLevel, ignore_merges
                                 qwen2   NFC normalizer + Split(Qwen2 regex, \\p{N}) + ByteLevel
                                 smollm  Digits(individual) + ByteLevel(add_prefix_space)
  <name>/tokenizer.model       SentencePiece models trained with `sentencepiece` (sp_bpe: Llama 2 settings,
                               byte fallback; sp_unigram: defaults)
  <name>/expected.jsonl        per corpus line: ids (no special tokens added), the decode of the ids, and
                               the decode of the first half of the ids (splits UTF-8 across tokens)
Usage: make_tokenizer_testdata.py OUT_DIR"""
import json
import os
import random
import sys
import unicodedata

WORDS = ("the of and to in is was that for it with as his on be at by had not are but from or have an they "
         "which one you were her all she there would their we him been has when who will more no if out so said "
         "what up its about into than them can only other new some could time these two may then do first any "
         "my now such like our over man me even most made after also did many before must through back years "
         "where much your way well down should because each just those people how too little state good very "
         "make world still own see men work long get here between both life being under never day same another "
         "know while last might us great old year off come since against go came right used take three").split()
ACCENTED = ("café naïve résumé façade jalapeño Ærøskøbing Straße Müller über Ångström señor coöperate déjà "
            "vu crème brûlée Zürich São Paulo Łódź Dvořák Škoda İstanbul smörgåsbord piñata").split()
CJK = ["你好世界", "中文分词测试", "東京都", "日本語のテキスト", "ひらがなとカタカナ", "한국어 문장입니다", "我们今天去公园",
       "机器学习", "自然言語処理", "漢字", "서울특별시", "繁體中文測試"]
OTHER_SCRIPTS = ["Привет мир", "Ελληνικά γράμματα", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีครับ",
                 "Tiếng Việt có dấu", "ქართული", "Հայերեն"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "🇯🇵", "❤️", "🔥", "🎉", "🤖", "✨", "🏳️‍🌈", "🧑🏿‍💻", "😂😂😂", "☕"]
NUMBERS_SPECIAL = ["²", "³", "½", "Ⅻ", "١٢٣", "１２３", "৩", "⁴⁵", "0.5", "3.14159", "1,000,000", "2024-01-15"]
WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000", "\u2003", "    \n\t"]
CONTRACTIONS = ["don't", "I'm", "we'll", "they're", "you've", "it's", "he'd", "DON'T", "I'M", "WE'LL",
                "They'Re", "can'T", "'s", "'LL", "rock'n'roll", "O'Neil"]
CODE = ["def f(x):\n    return x**2", "for (int i = 0; i < n; ++i) {}", "if a != b && c >= d:", "x = [1, 2, 3]",
        "<div class=\"a\">hi</div>", "SELECT * FROM t WHERE id=42;", "path/to/file.txt", "user@example.com",
        "https://example.org/a?b=c&d=e", "$HOME ~/bin", "#include <vector>"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>",
            "<|start_header_id|>", "<|end_header_id|>", "<mask>", "<custom_added>"]
DECOMPOSED = ["e\u0301", "a\u0308", "n\u0303", "o\u0302", "A\u030a"]


def number(rng):
    return str(rng.randint(0, 10 ** rng.randint(1, 12)))


def fragment(rng):
    kind = rng.random()
    if kind < 0.35:
        w = rng.choice(WORDS)
        return w.capitalize() if rng.random() < 0.2 else (w.upper() if rng.random() < 0.05 else w)
    if kind < 0.45:
        return rng.choice(ACCENTED)
    if kind < 0.52:
        return rng.choice(CJK)
    if kind < 0.56:
        return rng.choice(OTHER_SCRIPTS)
    if kind < 0.62:
        return rng.choice(EMOJI)
    if kind < 0.72:
        return number(rng) if rng.random() < 0.8 else rng.choice(NUMBERS_SPECIAL)
    if kind < 0.78:
        return rng.choice(CONTRACTIONS)
    if kind < 0.82:
        return rng.choice(CODE)
    if kind < 0.85:
        return rng.choice(DECOMPOSED) + rng.choice(WORDS)
    if kind < 0.87:
        return rng.choice(SPECIALS)
    return rng.choice(".,;:!?()[]{}\"'-—–…/\\@#%^&*+=<>|~`$€£¥§°")


def make_corpus(rng, n_lines):
    lines = []
    for _ in range(n_lines):
        parts = []
        for _ in range(rng.randint(1, 25)):
            parts.append(fragment(rng))
            parts.append(rng.choice(WHITESPACE) if rng.random() < 0.25 else (" " if rng.random() < 0.85 else ""))
        line = "".join(parts)
        if rng.random() < 0.1:
            line = rng.choice(WHITESPACE) + line  # leading white space
        if rng.random() < 0.1:
            line = line + rng.choice(WHITESPACE)  # trailing white space
        lines.append(line)
    # Hand-written edge cases.
    lines += ["", " ", "   ", "\n", "a", "'s", "''", "hello  world", "hello\n\nworld", "12345678901234567890",
              "x" * 300, " " * 40 + "end", "😀" * 20, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
              "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
              "text <mask> more", "a<custom_added>b", "tab\tand\u00a0nbsp\u3000ideographic"]
    # Fuzz lines: random strings over a pool of characters at the edges of the regexes' classes.
    pool = (list(" \t\n\r\u00a0\u3000\u2003\u200b\u0085\u000b\u000c\u001c") + list("'sStTrReEvVmMlLdD\u017f") +
            list("aZé0159²½Ⅻ١１\u0301\u0308!?.,-_\"#") + ["中", "日", "한", "😀", "👍🏽", "\u200d", "\ufe0f", "ß", "İ"])
    for _ in range(600):
        lines.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 40))))
    return lines


def train_byte_level(name, corpus, out_dir):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    gpt2_regex = None
    llama3_regex = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                    r"\s*[\r\n]+|\s+(?!\S)|\s+")
    qwen2_regex = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                   r"\s*[\r\n]+|\s+(?!\S)|\s+")
    specials = {"gpt2": ["<|endoftext|>"], "smollm": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                           "<|eot_id|>"],
                "qwen2": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]}[name]
    tok = Tokenizer(models.BPE(ignore_merges=(name == "llama3")))
    if name == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    elif name == "smollm":
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)])
    else:
        regex = llama3_regex if name == "llama3" else qwen2_regex
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    if name == "qwen2":
        tok.normalizer = normalizers.NFC()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    # An added (not special) token and a special token that strips white space on its left.
    tok.add_tokens([AddedToken("<custom_added>", special=False, normalized=False)])
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    tok.save(os.path.join(out_dir, name, "tokenizer.json"))
    bos, eos = {"gpt2": (None, "<|endoftext|>"), "smollm": (None, "<|endoftext|>"),
                "llama3": ("<|begin_of_text|>", "<|eot_id|>"), "qwen2": (None, "<|im_end|>")}[name]
    with open(os.path.join(out_dir, name, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": bos, "eos_token": eos}, f)
    return (lambda text: tok.encode(text, add_special_tokens=False).ids,
            lambda ids: tok.decode(ids, skip_special_tokens=True))


def train_sentencepiece(name, corpus, out_dir):
    import sentencepiece as spm
    os.makedirs(os.path.join(out_dir, name), exist_ok=True)
    sentences = [line.replace("\n", " ").replace("\r", " ") for line in corpus if line.strip()]
    prefix = os.path.join(out_dir, name, "tokenizer")
    if name == "sp_bpe":  # Llama 2's trainer settings, smaller vocabulary
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_prefix=prefix, model_type="bpe", vocab_size=2000,
            character_coverage=0.99, byte_fallback=True, split_digits=True, normalization_rule_name="identity",
            add_dummy_prefix=True, remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2, num_threads=1)
    else:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(sentences), model_prefix=prefix, model_type="unigram",
                                       vocab_size=2000, minloglevel=2, num_threads=1)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    return (lambda text: sp.encode(text), lambda ids: sp.decode(ids))


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    rng = random.Random(20240115)
    corpus = make_corpus(rng, 2200)
    with open(os.path.join(out_dir, "corpus.jsonl"), "w") as f:
        for line in corpus:
            f.write(json.dumps(line) + "\n")
    makers = [(n, train_byte_level) for n in ("gpt2", "llama3", "qwen2", "smollm")]
    makers += [(n, train_sentencepiece) for n in ("sp_bpe", "sp_unigram")]
    for name, make in makers:
        encode, decode = make(name, corpus, out_dir)
        with open(os.path.join(out_dir, name, "expected.jsonl"), "w") as f:
            for line in corpus:
                ids = encode(line)
                f.write(json.dumps({"ids": ids, "decoded": decode(ids),
                                    "decoded_half": decode(ids[: len(ids) // 2])}) + "\n")
    # Sanity: the corpus covers what the issue asks for.
    joined = "".join(corpus)
    assert any(unicodedata.category(c) == "Lo" and "\u4e00" <= c <= "\u9fff" for c in joined)
    assert "\U0001F600" in joined and "\t" in joined and "  " in joined and "e\u0301" in joined


if __name__ == "__main__":
    main()
