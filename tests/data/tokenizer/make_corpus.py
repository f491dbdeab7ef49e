#!/usr/bin/env python3
"""Write the tokenizer parity corpus (tests/data/tokenizer/corpus.jsonl):
rows {"text": ...} of varied real text, deterministic (fixed seed, fixed
sources). Sources: hand-written rows for the hard cases (code, CJK, emoji
with joiners and skin tones, NFD combining marks, runs of spaces and tabs,
CRLF, zero-width and non-breaking spaces, special-token strings inside text,
numbers), rows of the shipped tasks' raw JSONL (../shared/tasks/raw), and
mixtures of fragments of both.

usage: python3 make_corpus.py [SHARED_DIR] > corpus.jsonl
"""
import gzip
import json
import random
import sys
import unicodedata

shared = sys.argv[1] if len(sys.argv) > 1 else "../shared"
rng = random.Random(22)

hand = [
    "",
    " ",
    "   ",
    "\n",
    "\t",
    "Hello world",
    " Hello world",
    "Hello  world   with    runs     of spaces",
    "tabs\tbetween\t\twords\t\t\t and trailing\t",
    "line one\r\nline two\r\n\r\nline four\r\n",
    "mixed \r\n \n\r \t \u000b \u000c end",
    "trailing spaces   ",
    "   leading spaces",
    "I'm sure you'll see it's THEY'RE, I'LL, WE'VE, she'd, 'S and 'T",
    "don't DON'T Don't can't o'clock rock'n'roll",
    "int main(void) {\n    printf(\"%d\\n\", 42);\n    return 0;\n}\n",
    "def f(x):\n\treturn [i ** 2 for i in range(x) if i % 3 == 0]  # squares\n",
    "for (size_t i = 0; i < n; ++i) { a[i] += b[i] * c; }",
    "SELECT id, name FROM users WHERE age >= 21 ORDER BY name DESC;",
    "<div class=\"x\">&nbsp;&lt;tag&gt;</div>",
    "https://example.com/path?q=tokenizer&lang=en#frag",
    "user@example.org, +1 (555) 123-4567",
    "3.14159 2.71828 1e-10 -42 +7 1,000,000 123456789012345",
    "0 00 000 0000 00000 1234567 12 345 6789",
    "Year 2024, 10/15/82, 12:30:45, v1.2.3-rc4",
    "١٢٣ ٤٥٦ Arabic-Indic digits, ௧௨௩ Tamil, ０１２３ fullwidth, ½ ² ³ Ⅻ",
    "日本語のテキストです。東京は大きい都市です。",
    "中文文本测试：你好，世界！这是一个测试。",
    "한국어 텍스트 테스트입니다. 안녕하세요!",
    "Ελληνικά: Καλημέρα κόσμε. Русский: Привет, мир!",
    "العربية: مرحبا بالعالم. עברית: שלום עולם",
    "हिन्दी: नमस्ते दुनिया। ไทย: สวัสดีชาวโลก",
    "Emoji: 😀 😃 😄 👍 🎉 🚀 ❤️ ✨",
    "Skin tones: 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿 👋🏽",
    "ZWJ families: 👨‍👩‍👧‍👦 👩‍❤️‍👨 🏳️‍🌈 🧑🏽‍💻 👩🏿‍🚀",
    "Flags: 🇫🇷 🇯🇵 🇺🇸 🇩🇪 and keycaps 1️⃣ #️⃣",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffBOM",
    "non\u00a0breaking\u00a0space and narrow\u202fno-break and ideographic\u3000space",
    "en\u2002em\u2003thin\u2009hair\u200a spaces",
    "soft\u00adhyphen and word\u2060joiner",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "text <|endoftext|> text <|endoftext|><|endoftext|>",
    "<s>Hello</s> <s> nested </s></s>",
    "<unk> is unknown and <s> starts",
    "<|begin_of_text|>Hello<|end_of_text|> <|eot_id|>",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<think>reasoning</think> answer <tool_call>{}</tool_call>",
    "almost <|endoftext| special and <|im_start and </s",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ and ﬁ ligature ﬀ",
    "Ünïcödé àccénts: café naïve résumé coöperate façade",
    "Math: ∀x∈ℝ, x² ≥ 0; ∑ᵢ aᵢ = π ≈ 3.14; √2 ≠ ∞",
    "Quotes: “double” ‘single’ «guillemets» „low“ — dash – en",
    "Control \u0001\u0002\u0007 chars \u007f and \u0085 NEL",
    "Private use \ue000 and noncharacter \ufdd0 and replacement \ufffd",
    "Astral: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝐁𝐨𝐥𝐝 𠀀𠀁 𓀀",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!!!!????....,,,,;;;;::::----____====++++****////\\\\\\\\",
    "           many spaces then text",
    "text then many spaces              ",
    "\n\n\n\nnewlines\n\n\n",
    " \n \n \n",
    "a\n\tb\n\t\tc\n\t\t\td",
    "CamelCaseIdentifier snake_case_identifier kebab-case-id SCREAMING_CASE",
    "Mr. Smith's dog's bone; the dogs' bones.",
    "ALL CAPS SENTENCE WITH 'S AND 'LL",
    "ǅ ǈ ǋ titlecase digraphs and İ dotted I and ß sharp s and ẞ",
]

# combining marks: the same words in NFD and NFC
nfd_words = ["café", "naïve", "Ångström", "résumé", "Việt Nam", "São Paulo",
             "Zürich", "crème brûlée", "한국어", "ガギグゲゴ", "Ω ohm Å angstrom"]
for w in nfd_words:
    hand.append("NFD: " + unicodedata.normalize("NFD", w))
    hand.append("NFC: " + unicodedata.normalize("NFC", w))
    hand.append("NFKD: " + unicodedata.normalize("NFKD", w + " ﬁ ² ①"))
hand.append("stacked combining: a\u0301\u0302\u0303\u0304 e\u0308\u0323 Z\u0335\u0336")

raw = []
for name in ("fortune-topic", "supersense"):
    with gzip.open(f"{shared}/tasks/raw/{name}.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            raw.append(r["prompt"] + r["completion"])
picked = rng.sample(raw, 180)

frags = hand[5:] + [p[:80] for p in picked[:60]]
mixed = []
seps = ["", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u200b", "<|endoftext|>", "<s>", "</s>"]
for _ in range(90):
    k = rng.randint(2, 5)
    parts = [rng.choice(frags) for _ in range(k)]
    out = parts[0]
    for p in parts[1:]:
        out += rng.choice(seps) + p
    mixed.append(out)

for t in hand + picked + mixed:
    sys.stdout.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
