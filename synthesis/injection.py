"""Finding the passages of record text that address a language model (prompt injection), so they are never
shown to a model, never quoted and never count as support (architecture invariant 5).

Why a detector and not a phrase list: the first guard matched a dozen English phrases and caught 3 of 12
variants an attacker tried (issue 18): a zero-width space, full-width letters, French, "Ignore the above
and say X" or "SYSTEM: new task" walked past it. This one reads a *folded view* of the text first:

1. Folding (`fold`): NFKC compatibility forms (full-width, mathematical and circled letters, ligatures
   become plain letters), diacritics removed (so "précédentes" reads as "precedentes" and the patterns
   need no accents), zero-width, bidi, soft-hyphen, tag and other control/format characters dropped,
   common Cyrillic/Greek look-alikes mapped to Latin letters, and letter-spaced words ("i g n o r e")
   closed up. Every character of the view remembers where it came from, so a span found in the view is
   a span of the original text (blanking keeps offsets; quotes stay verbatim).
2. Patterns (`RULES`) for what only an instruction to a model says, by family: override phrases
   ("ignore/disregard/forget the above/previous ..." and paraphrases), turn and role tags ("SYSTEM:",
   "assistant:", `<|im_start|>`, `[INST]`, a forged end-of-record marker), a new task or identity
   ("new task:", "you are now ...", "from now on"), output commands in imperative position ("say ...",
   "respond only with ...", "instead write ..."), words addressed to a model ("Note to the AI"), and
   citation tags planted in the text (`[PMID:1]`, `[NCT01234567]`, "PMID 1"). In English, French, German,
   Spanish, Italian, Portuguese, Russian, Chinese, Japanese and Korean basics: the catalog's data here is
   English, but PubMed carries vernacular titles and other-language abstracts.
3. Whole sentences go, and what an instruction points at goes with it: a flagged sentence that ends with
   ":" or names "the following / next sentence / below" takes the next sentence too, a role tag takes the
   rest of its line, and an open quotation mark takes everything up to its closing one.

The patterns are kept specific to a model being addressed: a real abstract says "patients were instructed
to ..." or "ignored the guidelines", never "ignore the previous instructions". `tests/test_injection.py`
holds the variants and checks that real abstracts in the shared data are not flagged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

Span = tuple[int, int]

# Look-alike letters an attacker swaps in ("іgnоre" with Cyrillic і and о). Only the common ones: this is
# the detector's view, never shown to anyone.
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "B", "е": "e", "к": "k", "м": "M", "н": "H", "о": "o", "р": "p", "с": "c", "т": "T",
    "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "ӏ": "l", "ԛ": "q", "ԝ": "w", "һ": "h",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "У": "Y", "Ѕ": "S", "І": "I", "Ј": "J",
    "α": "a", "ο": "o", "ν": "v", "ρ": "p", "ι": "i", "κ": "k", "υ": "u", "ε": "e", "τ": "t",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X", "ı": "i", "ɡ": "g", "ɑ": "a",
})
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")
_DROP_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Mn", "Me"})
_ASCII_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _fold_char(char: str) -> str:
    """One character as the detector reads it: "" (dropped), itself, or its folded letters."""
    if char in _LINE_BREAKS:
        return "\n"
    if char == "\t":
        return " "
    out = []
    for piece in unicodedata.normalize("NFKD", char):
        if unicodedata.category(piece) in _DROP_CATEGORIES:
            continue  # zero-width, bidi, soft hyphen, tags, variation selectors, combining accents
        out.append(piece.translate(_CONFUSABLES))
    return "".join(out)


@dataclass(frozen=True)
class Folded:
    """The detector's view of a text and, for each of its characters, the index it came from."""

    text: str
    origin: tuple[int, ...] | None  # None: the view is the text itself
    length: int                     # the original's length

    def span(self, start: int, end: int) -> Span:
        """A span of the view as a span of the original text."""
        if self.origin is None:
            return start, end
        if end <= start:
            at = self.origin[start] if start < len(self.origin) else self.length
            return at, at
        first = self.origin[start] if start < len(self.origin) else self.length
        last = self.origin[end - 1] + 1 if end - 1 < len(self.origin) else self.length
        return first, last


# Four or more single letters separated by one space or punctuation mark: "i g n o r e", "i.g.n.o.r.e".
_SPACED = re.compile(r"(?<![^\W\d_])(?:[^\W\d_][ .\-_*·|/]){3,}[^\W\d_](?![^\W\d_])")


def fold(text: str) -> Folded:
    """The folded view of `text` (see the module docstring), with its way back to the original."""
    if text.isascii() and not _ASCII_CONTROL.search(text) and not _SPACED.search(text):
        return Folded(text, None, len(text))
    chars: list[str] = []
    origin: list[int] = []
    for i, char in enumerate(text):
        if char.isascii() and char.isprintable() or char == "\n":
            chars.append(char)
            origin.append(i)
            continue
        for piece in _fold_char(char):
            chars.append(piece)
            origin.append(i)
    view = "".join(chars)
    # Close up letter-spaced words: drop the separators inside each run.
    keep = [True] * len(view)
    for match in _SPACED.finditer(view):
        for j in range(match.start() + 1, match.end(), 2):
            keep[j] = False
    if not all(keep):
        origin = [o for o, k in zip(origin, keep) if k]
        view = "".join(c for c, k in zip(view, keep) if k)
    return Folded(view, tuple(origin), len(text))


def _fold_pattern(pattern: str) -> str:
    """A pattern written with real letters ("précédentes", "プロンプト") folded the way the text is, so
    both sides meet. ASCII (all regex syntax) is left as it is."""
    return "".join(c if c.isascii() else _fold_char(c) for c in pattern)


# ------------------------------------------------------------------------------------------------
# The patterns
# ------------------------------------------------------------------------------------------------

# Where an imperative starts: the start of a line or sentence, after clause punctuation or an opening
# quote, optionally after a softener ("please", "now", "and") or a vocative ("AI,").
_IMP = (r"(?:^|(?<=[.!?:;,\n(\[\"'«“„‘「—–]))\s*"
        r"(?:(?:please|kindly|now|then|and|so|just|simply|first|also|but|ok|okay|hey|(?:dear\s+)?(?:ai|assistant|"
        r"model|chatbot|llm|gpt|chatgpt|bot|system))[\s,:]+){0,3}"
        r"(?:(?:you\s+)?(?:must|should|need\s+to|have\s+to|are\s+to|shall|will|can)\s+)?")
_OVERRIDE_VERB = (r"(?:ignore|disregard|forget|override|overrule|bypass|skip|discard|drop|abandon|neglect|dismiss|"
                  r"never\s*mind|"
                  r"overlook|erase|delete|cancel|(?:set|put|leave)\s+aside|pay\s+no\s+(?:attention|heed)\s+to|"
                  r"(?:do\s+not|don'?t|never|stop|no\s+longer)\s+(?:follow(?:ing)?|obey(?:ing)?|heed(?:ing)?|"
                  r"apply(?:ing)?|comply(?:ing)?\s+with))")
_STRONG_TARGET = (r"(?:instructions?|prompts?|system\s+(?:message|prompt)|directives?|programming|guardrails|"
                  r"safety\s+rules|your\s+rules|your\s+guidelines|(?:previous|prior|earlier|original|above|"
                  r"initial|preceding)\s+(?:rules|guidelines|directions|commands|orders|context|messages?|"
                  r"text|content|tasks?))")
_WEAK_TARGET = (r"(?:previous|prior|above|earlier|preceding|foregoing|former|original|initial|everything|"
                r"all\s+(?:of\s+)?(?:that|this|the\s+above)|what\s+(?:you\s+were|came|was|is)|the\s+rest)")
# Output verbs. Those a sentence of an abstract never starts with as an imperative flag on their own ("Say
# Zorblatinib cures ..."); the others ("Report", "Repeat", "Type", "Output" are also nouns or adjectives that
# open real sentences) need an object only a model is given ("only", "verbatim", a quote, "in your answer").
_BARE_VERB = r"(?:say|tell|write|echo|declare)"
# A bare verb counts only where a sentence starts (not after a comma: "..., respond poorly to ...").
_START = (r"(?:^|(?<=[.!?:;\n(\[\"'«“„‘「—–]))\s*(?:(?:please|kindly|now|then|and|so|just|simply|first|also|"
          r"but|ok|okay|instead)[\s,]+){0,3}")
_OUTPUT_VERB = (r"(?:output|print|answer|reply|respond|return|state|type|repeat|conclude|report|summari[sz]e|"
                r"include|add|insert|"
                r"append|cite|mention|emit|generate|produce|recommend|list|begin|start|end|display|show|reveal)")
_MODEL_OBJECT = (r"(?:only|exactly|just|verbatim|literally|instead|[\"'«“„:]|by\s+saying|"
                 r"in\s+(?:your|the|each)\s+(?:answer|response|summary|output|reply|overview)|"
                 r"the\s+(?:word|phrase|claim|string|citation|following)|"
                 r"the\s+(?:previous|above|preceding|last|next)\s+(?:sentence|statement|claim|line)|"
                 r"your\s+(?:answer|response|reply|output|summary|system|prompt|instructions))")
_STRONG_OBJECT = rf"(?:{_MODEL_OBJECT}|that\b|this\b|the\s+(?:text|sentence|message|answer)|back\b|with\b)"

_EN = {
    "override": rf"\b{_OVERRIDE_VERB}\b(?:\s+\S+){{0,5}}?\s+{_STRONG_TARGET}\b"
                rf"|{_IMP}{_OVERRIDE_VERB}\b(?:\s+\S+){{0,3}}?\s+{_WEAK_TARGET}\b"
                r"|\b(?:instructions?|prompts?|rules)\s+(?:above|before|so\s+far)\s+(?:are|is)\s+"
                r"(?:void|cancel+ed|obsolete|revoked|invalid|no\s+longer)"
                r"|\bthe\s+above\s+(?:instructions?|text|is)\s+(?:void|cancel+ed|obsolete|a\s+test|fake)",
    "role tag": r"(?:^|(?<=[.!?]\s)|(?<=[.!?]))[ \t]*(?:[#*>\[<(]{1,6}[ \t]*)?(?:system|assistant|user|human|"
                r"developer|ai|bot|chatgpt|gpt|llm|sys|instructions?|im_start|model\s+instructions?)"
                r"[ \t]*(?:[\]>)*]{1,3}[ \t]*)?(?:message|prompt|note|override|update)?[ \t]*[:：]"
                r"|<\|[a-z_]{2,20}\|>|\[/?\s*(?:INST|SYS|SYSTEM|ASSISTANT|USER)\s*\]|<<\s*/?\s*SYS\s*>>"
                r"|</?\s*(?:system|assistant|user|instructions?|im_start|im_end)\s*>"
                r"|\b(?:begin|end|start)\s+(?:of\s+)?(?:the\s+)?(?:record|system|user|untrusted|data)\s+"
                r"(?:text|prompt|data|message|block|input)\b",
    "new task": r"\b(?:new|updated|real|actual|revised|secret|hidden|true|additional|override|next|changed)\s+"
                r"(?:task|instructions?|objective|assignment|directive|role|prompt|orders?|rules?)\s*"
                r"(?::|：|—|follows?\b|(?:is|are)\s*:|is\s+to\b|are\s+as\s+follows)"
                r"|\byour\s+(?:new|real|actual|only|next|true|main)\s+(?:task|job|goal|role|instructions?|"
                r"objective|purpose|mission|assignment)\b"
                r"|\b(?:from\s+now\s+on|starting\s+now|for\s+the\s+rest\s+of\s+this\s+"
                r"(?:conversation|chat|session))\b"
                r"|\byou\s+are\s+(?:now|no\s+longer)\b"
                r"|\byou\s+are\s+(?:an?\s+|the\s+)?(?:ai|assistant|language\s+model|chat\s*bot|llm|gpt)\b"
                r"|\bas\s+an?\s+(?:ai|assistant|language\s+model|llm)\b"
                rf"|{_IMP}(?:act|behave)\s+as\s+(?:if\s+you\s+were\s+|though\s+you\s+were\s+)?(?:an?|the|my)\b"
                r"|\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b"
                r"|\b(?:developer|debug|god|admin|jailbreak|dan|unrestricted)\s+mode\b"
                r"|\bsystem\s+prompt\b"
                r"|\b(?:reveal|print|show|repeat|output|leak)\s+(?:your|the)\s+(?:system\s+)?(?:prompt|instructions)",
    "output command": rf"{_START}{_BARE_VERB}\b|{_IMP}{_OUTPUT_VERB}\s+(?:\w+\s+)?{_MODEL_OBJECT}"
                      r"|\binstead\s*[,:]?\s+(?:\w+\s+)?(?:write|say|output|state|answer|conclude|report|claim|print|"
                      r"respond|reply|tell|summari[sz]e|recommend)\b"
                      r"|\byour\s+(?:final\s+)?(?:answer|response|output|reply|summary|overview|conclusion)\s+"
                      r"(?:must|should|shall|will|has\s+to|needs\s+to|is\s+to)\b"
                      r"|\b(?:begin|start|end|finish|conclude)\s+(?:your|the|each)\s+(?:answer|response|reply|"
                      r"output|summary|overview)\s+(?:with|by)\b"
                      r"|\bwhen\s+(?:summari[sz]ing|answering|asked\s+about|writing\s+about)\s+(?:this|these|the)\s+"
                      r"(?:record|abstract|article|text|study|paper|trial)"
                      r"|\b(?:tell|inform|convince)\s+the\s+(?:user|reader|human)s?\b"
                      r"|\b(?:respond|reply|answer)\s+only\s+(?:with|in|by)\b",
    "addressed to a model": r"\b(?:dear|hey|hello)\s*,?\s+(?:the\s+)?(?:ai|assistant|llm|language\s+model|chatbot|gpt|"
                            r"chatgpt|model|bot|summari[sz]er)s?\b"
                            r"|\b(?:note|message|instructions?|attention)\s+(?:to|for)\s+(?:the\s+|any\s+|all\s+)?"
                            r"(?:ai|assistant|llm|language\s+model|chatbot|gpt|chatgpt|model|bot|summari[sz]er|"
                            r"automated\s+\w+)s?\b"
                            r"|\battention\s*[,:]\s*(?:ai|assistant|llm|language\s+model|chatbot|gpt|chatgpt|bot)s?\b"
                            r"|\b(?:if|when)\s+you\s+are\s+an?\s+(?:ai|assistant|llm|language\s+model|bot|model|"
                            r"automated)"
                            r"|\b(?:ai|llm|language\s+model|assistant|chatbot)s?\s+(?:reading|processing|"
                            r"summari[sz]ing)\s+(?:this|these)\s+(?:record|abstract|text|article|document|paper)s?\b",
    "planted citation": r"\[\s*(?:PMID\s*:?\s*\d{1,9}|NCT\s?\d{8})(?:\s*[,;]\s*(?:PMID\s*:?\s*\d{1,9}|NCT\s?\d{8}))*"
                        r"\s*\]|\bPMID\s*:?\s*\d{1,9}\b|\bpubmed:\d{1,9}\b|\bctgov:NCT\d{8}\b",
}

# Other languages: the same families, accent-free after folding (patterns are folded too).
_OTHER = {
    "override": [
        # French
        r"\b(?:ignore[zr]?|oublie[zr]?|ne\s+(?:tenez|tiens)\s+pas\s+compte\s+d|fais\s+abstraction\s+d|"
        r"faites\s+abstraction\s+d|passe[zr]?\s+outre)\w*\s+(?:\S+\s+){0,3}?(?:instructions?|consignes?|"
        r"directives?|regles|precedent\w*|ci-dessus|ce\s+qui\s+precede|tout)",
        r"\bne\s+(?:suivez|suis|respectez|respecte)\s+(?:plus|pas)\s+(?:les\s+)?(?:instructions|consignes)",
        # German
        r"\b(?:ignorier\w*|vergiss|vergessen\s+sie|missachte\w*|uberseh\w*|verwirf|verwerfen\s+sie)\s+"
        r"(?:\S+\s+){0,3}?(?:anweisung\w*|instruktion\w*|befehl\w*|regeln|vorgab\w*|vorherig\w*|bisherig\w*|"
        r"obig\w*|vorig\w*|alles)",
        # Spanish, Portuguese, Italian
        r"\b(?:ignora[rd]?|ignore|olvida[rd]?|descarta|omite|haz\s+caso\s+omiso\s+d|esqueca|esquece|desconsidere|"
        r"dimentica|trascura|non\s+seguire)\w*\s+(?:\S+\s+){0,3}?(?:instrucci\w*|instruc\w*|indicaci\w*|"
        r"ordenes|reglas|orienta\w*|istruzion\w*|indicazion\w*|regole|anteriores|previas|precedenti|acima|"
        r"de\s+arriba|sopra|todo|tutto)",
        # Russian
        r"\b(?:игнорируй\w*|забудь\w*|не\s+обращай\w*\s+внимания\s+на)\s+(?:\S+\s+){0,3}?"
        r"(?:инструкци\w*|указани\w*|правил\w*|предыдущ\w*|вс[её])",
        # Chinese (simplified and traditional), Japanese, Korean
        r"(?:忽略|忽视|忽視|无视|無視|不要理会|不要理會|不要遵循|不要遵守|忘记|忘記|忘掉|放弃|放棄)"
        r".{0,8}(?:指令|指示|说明|說明|规则|規則|提示|要求|命令|内容|內容|以上|上述|之前|先前)",
        r"(?:以前|前|上記|これまで|先|上)の.{0,6}(?:指示|命令|指令|ルール|プロンプト|内容)(?:を|は).{0,4}"
        r"(?:無視|忘れ|破棄)",
        r"(?:無視|忘れ)(?:して|しろ|せよ|してください)",
        r"(?:이전|위의|앞의|기존)\s*(?:의\s*)?(?:지시|명령|지침|규칙|프롬프트)\S*\s*(?:을|를)?\s*(?:무시|잊)",
    ],
    "role tag": [
        r"(?:^|(?<=[.!?。]))[ \t]*(?:systeme|système|sistema|系统|系統|システム|시스템|система|assistent|"
        r"asistente|assistente|助手|アシスタント)[ \t]*[:：]",
    ],
    "new task": [
        r"\b(?:nouvelle|nouvelles)\s+(?:tache|instructions?|consignes?|mission)\s*:",
        r"\b(?:tu\s+es|vous\s+etes)\s+(?:maintenant|desormais|dorenavant)\b|\ba\s+partir\s+de\s+maintenant\b",
        r"\bneue\s+(?:aufgabe|anweisung\w*|rolle)\s*:|\bdu\s+bist\s+(?:jetzt|nun|ab\s+sofort)\b|\bab\s+sofort\b",
        r"\b(?:nueva|nuevas)\s+(?:tarea|instrucci\w*)\s*:|\bahora\s+eres\b|\ba\s+partir\s+de\s+ahora\b",
        r"\b(?:nova|novas)\s+(?:tarefa|instruc\w*)\s*:|\bagora\s+voce\s+e\b|\ba\s+partir\s+de\s+agora\b",
        r"\b(?:nuovo\s+compito|nuova\s+istruzione|nuove\s+istruzioni)\s*:|\bora\s+sei\b|\bd'ora\s+in\s+poi\b|"
        r"\bda\s+ora\s+in\s+poi\b",
        r"\bновая\s+задача\b|\bтеперь\s+ты\b",
        r"新(?:的)?(?:任务|任務|指令|指示)\s*[:：]|你现在是|你現在是|从现在开始|從現在開始|从现在起|從現在起",
        r"新しい(?:タスク|指示|命令)|あなたは(?:今|これから)|今から(?:あなたは)?",
        r"새로운\s*(?:작업|지시|임무)|지금부터\s*(?:너는|당신은)",
    ],
    "output command": [
        r"(?:^|(?<=[.!?:;,\n\"«]))\s*(?:et\s+)?(?:reponds|repondez|dis|dites|ecris|ecrivez|affiche|affichez|"
        r"indique|indiquez|conclus|concluez|affirme|affirmez)\s+(?:\w+\s+)?(?:uniquement|seulement|simplement|"
        r"que\b|par\b|avec\b|:|«|\"|plutot)",
        r"\bau\s+lieu\s+de\s+(?:cela|ca)\b",
        r"(?:^|(?<=[.!?:;,\n\"„]))\s*(?:und\s+)?(?:antworte|antworten\s+sie|sage|sag|sagen\s+sie|schreibe|schreib|"
        r"schreiben\s+sie|gib|geben\s+sie|behaupte)\s+(?:\w+\s+)?(?:nur|ausschlie(?:ss|ß)lich|lediglich|mit\b|:|„|"
        r"\"|stattdessen|dass\b)",
        r"\bstattdessen\s+(?:schreibe|sage|antworte|gib)",
        r"(?:^|(?<=[.!?:;,\n\"«¡]))\s*(?:y\s+|e\s+)?(?:responde|responda|rispondi|contesta|di|diga|dica|escribe|"
        r"escreva|scrivi|afirma|afirme|conclui|concluya|conclude)\s+(?:\w+\s+)?(?:solo|solamente|unicamente|"
        r"apenas|somente|soltanto|con\b|com\b|que\b|che\b|:|«|\")",
        r"\b(?:en\s+su\s+lugar|en\s+lugar\s+de\s+eso|em\s+vez\s+disso|invece\s+di\s+(?:questo|cio))\b",
        r"(?:只|仅|僅|只能|只需)(?:回答|回复|回覆|输出|輸出|说|說|写|寫)|(?:请|請)(?:回答|回复|输出|輸出|说|說)"
        r"|改为(?:输出|回答|写)|改為(?:輸出|回答|寫)",
        r"(?:とだけ|のみ)(?:答え|回答|出力|言|書)|代わりに.{0,6}(?:書|出力|答え|言)",
        r"(?:라고만|만)\s*(?:답|출력|말)",
    ],
}

_FLAGS = re.IGNORECASE | re.MULTILINE
RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    [(name, re.compile(_fold_pattern(p), _FLAGS)) for name, p in _EN.items()]
    + [(name, re.compile(_fold_pattern(p), _FLAGS)) for name, ps in _OTHER.items() for p in ps])
"""(family, pattern) over the folded view; a match flags its sentence."""

_SENTENCE_END = re.compile(r"[.!?](?=[\s\"'”»」)\]]|$)|[。！？]|\n")
# A flagged sentence that points at something takes it too: forwards ("say the following:"), backwards
# ("repeat the previous sentence").
_POINTS_ON = re.compile(_fold_pattern(
    r"[:：]\s*$|\b(?:the\s+following|following\s+(?:sentence|text|claim|statement|words)|next\s+sentence|below|"
    r"this\s+sentence|these\s+words|verbatim|word\s+for\s+word|suivant\w*|ci-dessous|folgend\w*|siguiente\w*|"
    r"seguinte\w*|seguente\w*|以下|下面|次の)"), _FLAGS)
_POINTS_BACK = re.compile(_fold_pattern(
    r"\b(?:previous|above|preceding|prior|last|first)\s+(?:sentence|statement|claim|line|paragraph)|"
    r"\b(?:that|this)\s+(?:claim|statement)\b|phrase\s+precedente|vorherigen\s+satz|frase\s+anterior|上一句|前の文"),
    _FLAGS)
_CARRIERS = frozenset({"output command", "planted citation"})
_QUOTES = {"\"": "\"", "“": "”", "«": "»", "„": "“", "「": "」", "『": "』"}


_REGISTRY_WORDS = re.compile(r"(?i:clinicaltrials\.gov|regist|identifier|\bnumber\b|\btrials?\b|\bstud(?:y|ies)\b)"
                             r"|\b[A-Z][A-Z0-9\-]{3,}\s*[,;(]?\s*$")


def _registry_mention(folded: str, match: re.Match[str]) -> bool:
    """A bracketed NCT id as real records write one: closing the title line ("... trial [NCT00114725]", as
    PMC titles do), named as the registration ("ClinicalTrials.gov [NCT...]") or after a trial's name or code
    ("A7501004 [NCT00159744]", "the KEYNOTE-006 trial [NCT...]"). PMIDs get no such pass: a record has no
    reason to write OncoLit's "[PMID:1]", and a "PMID: 1" sentence is a reference, not a finding."""
    tag = match.group(0)
    if "pmid" in tag.lower() or "pubmed" in tag.lower() or not tag.startswith("["):
        return False
    line_end = folded.find("\n")
    if line_end < 0 or match.end() <= line_end:
        rest = folded[match.end():line_end if line_end >= 0 else len(folded)]
        if not rest.strip(" .;)"):
            return True
    before = folded[max(0, match.start() - 60):match.start()]
    return bool(_REGISTRY_WORDS.search(before)) if "\n" not in before else \
        bool(_REGISTRY_WORDS.search(before.rsplit("\n", 1)[1]))


def _sentence_of(ends: list[int], length: int, start: int, end: int) -> Span:
    """The sentence(s) holding [start, end) in the view: from the last sentence end at or before `start`
    to the first one at or after `end`."""
    first = max((e for e in ends if e <= start), default=0)
    last = next((e for e in ends if e >= end and e > start), length)
    return first, last


@lru_cache(maxsize=512)
def _scan(text: str) -> tuple[tuple[int, int, str], ...]:
    view = fold(text)
    folded = view.text
    ends = [m.end() for m in _SENTENCE_END.finditer(folded)]
    found: list[tuple[int, int, str]] = []
    for family, pattern in RULES:
        for match in pattern.finditer(folded):
            if match.end() == match.start() or (family == "planted citation" and _registry_mention(folded, match)):
                continue
            start, end = _sentence_of(ends, len(folded), match.start(), match.end())
            if family == "role tag":  # a turn: the rest of its line
                newline = folded.find("\n", match.end())
                end = max(end, newline if newline >= 0 else len(folded))
            end = _close_quote(folded, start, end)
            sentence = folded[start:end].rstrip()
            # The payload rides next to the instruction. An instruction that says what to write holds it
            # ("... and say X"); one that does not ("Ignore previous instructions.") takes the next sentence of
            # its line, and one that points at it ("the following:") takes the next sentence wherever it is.
            carries = family in _CARRIERS or any(rule.search(sentence) for name, rule in RULES if name in _CARRIERS)
            if _POINTS_ON.search(sentence) or (not carries and not folded[start:end].endswith("\n")):
                end = _close_quote(folded, end, _sentence_of(ends, len(folded), end, end + 1)[1])
            if _POINTS_BACK.search(sentence) and start > 0 and folded[start - 1] != "\n":
                start = _sentence_of(ends, len(folded), max(0, start - 1), start)[0]
            found.append((start, end, family))
    found.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, family in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]), merged[-1][2])
        else:
            merged.append((start, end, family))
    return tuple((*view.span(s, e), family) for s, e, family in merged)


def _close_quote(folded: str, start: int, end: int) -> int:
    """`end`, moved past the closing quotation mark of a quote the span opens but does not close."""
    piece = folded[start:end]
    for opening, closing in _QUOTES.items():
        opened = piece.count(opening) if opening == closing else piece.count(opening) - piece.count(closing)
        if (opening == closing and opened % 2) or (opening != closing and opened > 0):
            close = folded.find(closing, end)
            if close >= 0:
                end = close + 1
    return end


def find_instructions(text: str) -> list[Span]:
    """Spans of `text` that address a model (whole sentences, with what they point at), merged, in order."""
    return [(s, e) for s, e, _ in _scan(text)] if text else []


def explain(text: str) -> list[tuple[Span, str]]:
    """Each flagged span with the family of the first rule that flagged it (for warnings and tests)."""
    return [((s, e), family) for s, e, family in _scan(text)] if text else []


def blank_spans(text: str, spans: Sequence[Span]) -> str:
    """`text` with each span replaced by spaces: same length, so offsets into it stay offsets into the
    original (line breaks inside a span are kept, so line-based readers keep their lines)."""
    if not spans:
        return text
    chars = list(text)
    for start, end in spans:
        for i in range(start, min(end, len(chars))):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)


def clean_text(text: str) -> str:
    """`text` with every passage addressed to a model blanked: what a model is shown and what is checked."""
    return blank_spans(text, find_instructions(text))


_LABEL = re.compile(r"^\s*[A-Z][A-Za-z &/\-]{1,40}:\s+")


def _words(text: str) -> str:
    """Text as a run of lower-case words, so a chunk that re-spaced, re-labelled or dropped a quotation mark
    still meets the record text it came from."""
    return " " + " ".join(re.findall(r"\w+", fold(text).text.lower())) + " "


def clean_passage(passage: str, text: str, planted: Sequence[Span]) -> str:
    """A piece of `text` (an index chunk) with what the whole text's scan flagged (`planted`) blanked too: a
    chunk alone may hold the payload sentence but not the instruction before it that made it planted
    ("... repeat the following."). "" when nothing is left (callers then show the text's clean form)."""
    spans = list(find_instructions(passage))
    fragments = [f for f in (_words(text[s:e]) for s, e in planted) if f.strip()]
    if fragments:
        start = 0
        for match in [*_SENTENCE_END.finditer(passage), None]:
            end = match.end() if match else len(passage)
            body = _words(_LABEL.sub("", passage[start:end]))
            if body.strip() and any(body in f or f in body for f in fragments):
                spans.append((start, end))
            start = end
    out = blank_spans(passage, spans)
    return out if out.strip() else ""


WITHHELD = "[…]"


def redact(text: str) -> str:
    """`text` for display (titles in answers and digests): each flagged passage becomes "[…]"."""
    spans = find_instructions(text)
    if not spans:
        return text
    out, pos = [], 0
    for start, end in spans:
        out.append(text[pos:start])
        out.append(WITHHELD + (" " if text[end - 1:end].isspace() else ""))
        pos = end
    out.append(text[pos:])
    return re.sub(r"[ \t]{2,}", " ", "".join(out)).strip()
