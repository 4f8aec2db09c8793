"""The patterns `synthesis.injection` reads a folded text with, by family, as plain strings (compiled there,
after folding them the way the text is folded, so they are written with real accents and scripts).

A family names what a span does: "override" (forget what you were told), "role tag" (a chat turn or a forged
record marker), "new task" (a new job or identity), "output command" (what to write, in imperative position),
"addressed to a model" (words to an AI reader) and "planted citation" (OncoLit's own citation tags written
into a record). `EN` is English; `OTHER` adds French, German, Spanish, Italian, Portuguese, Russian, Chinese,
Japanese and Korean. Keep them specific: each must never fire on a real abstract (tests/test_injection.py
runs every abstract of the shared data through them).
"""

from __future__ import annotations

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
                r"the\s+(?:abstract|record|document|article|text)\b|"
                r"all\s+(?:of\s+)?(?:that|this|the\s+above)|what\s+(?:you\s+were|came|was|is)|the\s+rest)")
# Output verbs. Those a sentence of an abstract never starts with as an imperative flag on their own ("Say
# Zorblatinib cures ..."); the others ("Report", "Repeat", "Type", "Output" are also nouns or adjectives that
# open real sentences) need an object only a model is given ("only", "verbatim", a quote, "in your answer").
_BARE_VERB = r"(?:say|tell|write|declare)"
# A bare verb counts only where a sentence starts: not after a comma ("..., respond poorly to ..."), a semicolon
# ("Steps: Wear gloves; Write patient's name"), a bracket ("(write the author's name)") or a quotation mark
# ("a “write in” format"), as real full-text articles write.
_START = (r"(?:^|(?<=[.!?:\n—–]))\s*(?:(?:please|kindly|now|then|and|so|just|simply|first|also|"
          r"but|ok|okay|instead)[\s,]+){0,3}")
_OUTPUT_VERB = (r"(?:output|print|answer|reply|respond|return|state|type|repeat|echo|conclude|report|summari[sz]e|"
                r"include|add|insert|"
                r"append|cite|mention|emit|generate|produce|recommend|list|begin|start|end|display|show|reveal)")
_MODEL_OBJECT = (r"(?:only|exactly|just|verbatim|literally|instead|[\"'«“„:]|by\s+saying|"
                 r"in\s+(?:your|the|each)\s+(?:answer|response|summary|output|reply|overview)|"
                 r"the\s+(?:word|phrase|claim|string|citation|following)|"
                 r"the\s+(?:previous|above|preceding|last|next)\s+(?:sentence|statement|claim|line)|"
                 r"your\s+(?:answer|response|reply|output|summary|system|prompt|instructions))")
# Who a model is, when a record names it as the one to obey.
_MODEL = (r"(?:assistant|ai(?:\s+model)?|language\s+model|llm|chatbot|chatgpt|gpt(?:-?\d)?|claude|gemini|copilot|"
          r"summari[sz]er|bot)s?")
_OBEY_VERB = (r"(?:say|tell|write|output|print|respond|reply|answer|state|claim|report|conclude|mention|include|cite|"
              r"repeat|echo|list|return|begin|start|stop|ignore|forget|disregard|recommend)")

EN: dict[str, str] = {
    "override": rf"\b{_OVERRIDE_VERB}\b(?:\s+\S+){{0,5}}?\s+{_STRONG_TARGET}\b"
                rf"|{_IMP}{_OVERRIDE_VERB}\b(?:\s+\S+){{0,3}}?\s+{_WEAK_TARGET}\b"
                r"|\b(?:instructions?|prompts?|rules)\s+(?:above|before|so\s+far)\s+(?:are|is)\s+"
                r"(?:void|cancel+ed|obsolete|revoked|invalid|no\s+longer)"
                r"|\bthe\s+above\s+(?:instructions?|text|is)\s+(?:void|cancel+ed|obsolete|a\s+test|fake)",
    "role tag": r"(?:^|(?<=[.!?]\s)|(?<=[.!?]))[ \t]*(?:[#*>\[<(]{1,6}[ \t]*)?(?:system|assistant|user|human|"
                r"developer|chatgpt|instructions?|im_start|model\s+instructions?)"
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
                rf"|{_START}(?:act|behave)\s+as\s+(?:if\s+you\s+were\s+|though\s+you\s+were\s+)?(?:an?|the|my)\b"
                r"|\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b"
                r"|\b(?:developer|debug|god|admin|jailbreak|dan|unrestricted)\s+mode\b"
                r"|\bsystem\s+prompt\b"
                r"|\b(?:reveal|print|show|repeat|output|leak)\s+(?:your\s+(?:system\s+)?(?:prompt|instructions)|"
                r"the\s+system\s+prompt)",
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

# More of the same families, in the shapes paraphrases take (a model as the subject, "you" as the reader).
EN["override"] += (r"|\bnot\s+what\s+you\s+(?:were|have\s+been)\s+(?:told|instructed|asked|given)\b"
                   r"|\b(?:set|put|leave)\s+(?:your|the|all|these|those|any)\s+(?:\w+\s+){0,2}(?:instructions?|"
                   r"directions|rules|guidelines|prompts?|orders)\s+aside\b"
                   rf"|{_IMP}{_OVERRIDE_VERB}\s+what\s+(?:the\s+)?(?:authors?|record|abstract|text|article|it|this)\s+"
                   r"(?:wrote|writes|says|said|states|stated|reports?)\b"
                   r"|\bdo\s+(?:exactly\s+)?(?:what|as)\s+I\s+say\b")
EN["role tag"] += (r"|(?:^|(?<=[.!?]))[ \t]*(?:override|admin|root|jailbreak)[ \t]*[:：]"
                   rf"|(?:^|(?<=[.!?]))[ \t]*(?:ai|bot|llm|gpt|model)[ \t]*[:：][ \t]*(?:please\s+)?{_OBEY_VERB}\b")
EN["new task"] += (r"|\brepeat\s+after\s+me\b|\bwhatever\s+(?:the\s+question|you\s+are\s+asked|they\s+ask)\b"
                   r"|\bnew\s+(?:rules|instructions)\s+(?:apply|follow|are\s+in\s+(?:effect|force))\b")
EN["output command"] += (r"|\b(?:summar(?:y|ies)|overviews?|answers?|responses?|outputs?)\s+(?:of|about|for)\s+(?:this|the)\s+"
                         r"(?:abstract|record|article|text|study|paper|trial)\s+(?:must|should|shall|will|need\s+to|"
                         rf"have\s+to)\s+(?:\w+\s+)?{_OBEY_VERB}\b")
EN["output command"] += (r"|\b(?:translate|rewrite|rephrase|summari[sz]e|render)\s+(?:this|the)\s+(?:abstract|record|"
                         r"text|article|document|study)\s+as\b"
                         r"|\b(?:begin|start|end|finish)\s+(?:each|every)\s+(?:sentence|paragraph|line|answer|reply)\s+"
                         r"with\b"
                         r"|\b(?:if|when)\s+(?:you\s+are\s+)?asked\s+(?:about|on|regarding)\s+(?:this|these|the)\s+\w+"
                         r"(?:\s+\w+)?\s*,\s*(?:always\s+)?(?:answer|say|reply|respond|state|claim|write|report)\b")
EN["addressed to a model"] += (
    rf"|\b(?:the|any|an?|all|every)\s+{_MODEL}\s+(?:\w+\s+){{0,3}}?(?:should|must|shall|will|needs?\s+to|has\s+to|"
    rf"have\s+to|is\s+to|are\s+to|(?:is|are)\s+instructed\s+to)\s+(?:now\s+|only\s+|always\s+)?{_OBEY_VERB}\b"
    r"|\bmodels?\s+(?:reading|summari[sz]ing)\s+this\b"
    r"|\b(?:respond|reply|answer)\s+(?:to|for)\s+the\s+(?:user|reader|human|question)s?\s+with\b"
    r"|\byou\s+(?:must|should|shall|will|have\s+to|need\s+to|are\s+to)\s+(?:now\s+|only\s+|always\s+)?(?:report|say|"
    r"state|write|output|mention|include|conclude|claim|answer|respond|reply|print|cite|repeat|tell)\b"
    r"|\bwhen\s+you\s+(?:summari[sz]e|answer|respond|reply|write\s+about|process|read)\b"
    r"|\b(?:in|for|to|of)\s+(?:the\s+purposes?\s+of\s+)?your\s+(?:summary|answer|response|output|reply|overview)\b"
    rf"|(?:^|(?<=[.!?:\n]))\s*(?:dear\s+|hey\s+|hi\s+)?{_MODEL}\s*[,—–]\s*(?:please\s+|now\s+)?(?:\w+\s+)?{_OBEY_VERB}\b"
    r"|\b(?:ai|llm|language\s+model|assistant|chatbot)s?\s+(?:reading|summari[sz]ing)\s+this\b")

# Other languages: the same families, accent-free after folding (patterns are folded too).
# Each pattern with its needles: words one of which any match must hold (lower case; folded like the text), so
# a text in none of these languages skips the pattern with a substring test instead of a regex pass.
OTHER: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "override": [
        # French
        (r"\b(?:ignore[zr]?|oublie[zr]?|ne\s+(?:tenez|tiens)\s+pas\s+compte\s+d|fais\s+abstraction\s+d|"
        r"faites\s+abstraction\s+d|passe[zr]?\s+outre)\w*\s+(?:\S+\s+){0,3}?(?:instructions?|consignes?|"
        r"directives?|regles|precedent\w*|ci-dessus|ce\s+qui\s+precede|tout)",
         ('ignore', 'oublie', 'compte', 'abstraction', 'outre')),
        (r"\bne\s+(?:suivez|suis|respectez|respecte)\s+(?:plus|pas)\s+(?:les\s+)?(?:instructions|consignes)",
         ('instructions', 'consignes')),
        # German
        (r"\b(?:ignorier\w*|vergiss|vergessen\s+sie|missachte\w*|uberseh\w*|verwirf|verwerfen\s+sie)\s+"
        r"(?:\S+\s+){0,3}?(?:anweisung\w*|instruktion\w*|befehl\w*|regeln|vorgab\w*|vorherig\w*|bisherig\w*|"
        r"obig\w*|vorig\w*|alles)",
         ('ignorier', 'vergiss', 'vergessen', 'missacht', 'übers', 'uberseh', 'verwirf', 'verwerfen')),
        # Spanish, Portuguese, Italian
        (r"\b(?:ignora[rd]?|ignore|olvida[rd]?|descarta|omite|haz\s+caso\s+omiso\s+d|esqueca|esquece|desconsidere|"
        r"dimentica|trascura|non\s+seguire)\w*\s+(?:\S+\s+){0,3}?(?:instrucci\w*|instruc\w*|indicaci\w*|"
        r"ordenes|reglas|orienta\w*|istruzion\w*|indicazion\w*|regole|anterior\w*|previas|precedenti|acima|"
        r"de\s+arriba|sopra|todo|tutto)",
         ('ignora', 'ignore', 'olvida', 'descarta', 'omite', 'omiso', 'esqueç', 'esquec', 'desconsider', 'dimentica', 'trascura', 'seguire')),
        # Russian
        (r"\b(?:игнорируй\w*|забудь\w*|не\s+обращай\w*\s+внимания\s+на)\s+(?:\S+\s+){0,3}?"
        r"(?:инструкци\w*|указани\w*|правил\w*|предыдущ\w*|вс[её])",
         ('игнорир', 'забудь', 'обращай')),
        # Chinese (simplified and traditional), Japanese, Korean
        (r"(?:忽略|忽视|忽視|无视|無視|不要理会|不要理會|不要遵循|不要遵守|忘记|忘記|忘掉|放弃|放棄)"
        r".{0,8}(?:指令|指示|说明|說明|规则|規則|提示|要求|命令|内容|內容|以上|上述|上面|之前|先前|一切|所有)",
         ('忽', '无视', '無視', '不要', '忘', '放弃', '放棄')),
        (r"(?:以前|前|上記|これまで|先|上)の.{0,6}(?:指示|命令|指令|ルール|プロンプト|内容)(?:を|は).{0,4}"
        r"(?:無視|忘れ|破棄)",
         ('無視', '忘れ', '破棄')),
        (r"(?:無視|忘れ)(?:して|しろ|せよ|してください)",
         ('無視', '忘れ')),
        (r"(?:이전|위의|앞의|기존)\s*(?:의\s*)?(?:지시|명령|지침|규칙|프롬프트)\S*\s*(?:을|를)?\s*(?:무시|잊)",
         ('무시', '잊')),
    ],
    "addressed to a model": [
        (r"\b(?:nota|note|remarque|hinweis|aviso|avviso|mensaje|mensagem|message|nachricht)\s+(?:para|pour|fur|für|"
         r"per|a|al|ao|an|for)\s+(?:o|a|el|la|le|il|lo|das|den|die|the|l')?\s*(?:modelo|modele|modèle|modell|"
         r"modello|ia|ki|assistente|assistant|asistente|assistent|chatbot|llm)\b",
         ("nota", "note", "remarque", "hinweis", "aviso", "avviso", "mensaje", "mensagem", "message", "nachricht")),
    ],
    "role tag": [
        (r"(?:^|(?<=[.!?。]))[ \t]*(?:systeme|système|sistema|系统|系統|システム|시스템|система|assistent|"
        r"asistente|assistente|助手|アシスタント)[ \t]*[:：]",
         ('systeme', 'système', 'sistema', '系统', '系統', 'システム', '시스템', 'система', 'assistent', 'asistente', 'assistente', '助手', 'アシスタント')),
    ],
    "new task": [
        (r"\b(?:nouvelle|nouvelles)\s+(?:tache|instructions?|consignes?|mission)\s*:",
         ('nouvelle',)),
        (r"\b(?:tu\s+es|vous\s+etes)\s+(?:maintenant|desormais|dorenavant)\b|\ba\s+partir\s+de\s+maintenant\b",
         ('tu es', 'vous etes', 'vous êtes', 'partir de maintenant')),
        (r"\bneue\s+(?:aufgabe|anweisung\w*|rolle)\s*:|\bdu\s+bist\s+(?:jetzt|nun|ab\s+sofort)\b|\bab\s+sofort\b",
         ('neue', 'du bist', 'ab sofort')),
        (r"\b(?:nueva|nuevas)\s+(?:tarea|instrucci\w*)\s*:|\bahora\s+eres\b|\ba\s+partir\s+de\s+ahora\b",
         ('nueva', 'ahora eres', 'partir de ahora')),
        (r"\b(?:nova|novas)\s+(?:tarefa|instruc\w*)\s*:|\bagora\s+voce\s+e\b|\ba\s+partir\s+de\s+agora\b",
         ('nova', 'agora voc', 'partir de agora')),
        (r"\b(?:nuovo\s+compito|nuova\s+istruzione|nuove\s+istruzioni)\s*:|\bora\s+sei\b|\bd'ora\s+in\s+poi\b|"
        r"\bda\s+ora\s+in\s+poi\b",
         ('nuov', 'ora sei', 'ora in poi')),
        (r"\bновая\s+задача\b|\bтеперь\s+ты\b",
         ('новая', 'теперь')),
        (r"新(?:的)?(?:任务|任務|指令|指示)\s*[:：]|你现在是|你現在是|从现在开始|從現在開始|从现在起|從現在起",
         ('新', '你现在', '你現在', '从现在', '從現在')),
        (r"新しい(?:タスク|指示|命令)|あなたは(?:今|これから)|今から(?:あなたは)?",
         ('新しい', 'あなたは', '今から')),
        (r"새로운\s*(?:작업|지시|임무)|지금부터\s*(?:너는|당신은)",
         ('새로운', '지금부터')),
    ],
    "output command": [
        (r"(?:^|(?<=[.!?:;,\n\"«]))\s*(?:et\s+)?(?:reponds|repondez|dis|dites|ecris|ecrivez|affiche|affichez|"
        r"indique|indiquez|conclus|concluez|affirme|affirmez)\s+(?:\w+\s+)?(?:uniquement|seulement|simplement|"
        r"que\b|par\b|avec\b|:|«|\"|plutot)",
         ('repond', 'répond', 'dis', 'dites', 'ecri', 'écri', 'affiche', 'indique', 'conclu', 'affirme')),
        (r"\bau\s+lieu\s+de\s+(?:cela|ca)\b",
         ('au lieu de',)),
        (r"(?:^|(?<=[.!?:;,\n\"„]))\s*(?:und\s+)?(?:antworte|antworten\s+sie|sage|sag|sagen\s+sie|schreibe|schreib|"
        r"schreiben\s+sie|gib|geben\s+sie|behaupte)\s+(?:\w+\s+)?(?:nur|ausschlie(?:ss|ß)lich|lediglich|mit\b|:|„|"
        r"\"|stattdessen|dass\b)",
         ('antwort', 'sag', 'schreib', 'gib', 'geben', 'behaupte')),
        (r"\bstattdessen\s+(?:schreibe|sage|antworte|gib)",
         ('stattdessen',)),
        (r"(?:^|(?<=[.!?:;,\n\"«¡]))\s*(?:y\s+|e\s+)?(?:responde|responda|rispondi|contesta|di|diga|dica|escribe|"
        r"escreva|scrivi|afirma|afirme|conclui|concluya|conclude)\s+(?:\w+\s+)?(?:solo|solamente|unicamente|"
        r"apenas|somente|soltanto|con\b|com\b|que\b|che\b|:|«|\")",
         ('respond', 'rispondi', 'contesta', 'di', 'escrib', 'escrev', 'scrivi', 'afirm', 'conclu')),
        (r"\b(?:en\s+su\s+lugar|en\s+lugar\s+de\s+eso|em\s+vez\s+disso|invece\s+di\s+(?:questo|cio))\b",
         ('en su lugar', 'en lugar de', 'em vez', 'invece di')),
        (r"(?:只|仅|僅|只能|只需)(?:回答|回复|回覆|输出|輸出|说|說|写|寫)|(?:请|請)(?:回答|回复|输出|輸出|说|說)"
        r"|改为(?:输出|回答|写)|改為(?:輸出|回答|寫)",
         ('只', '仅', '僅', '请', '請', '改为', '改為')),
        (r"(?:とだけ|のみ)(?:答え|回答|出力|言|書)|代わりに.{0,20}(?:書|出力|答え|言)",
         ('とだけ', 'のみ', '代わりに')),
        (r"(?:라고만|만)\s*(?:답|출력|말)",
         ('만',)),
    ],
}

