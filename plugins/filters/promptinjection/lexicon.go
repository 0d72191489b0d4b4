package promptinjection

// The signals, as phrase classes. Phrases are matched folded (case,
// diacritics, whitespace runs) on word boundaries. They were written from
// general knowledge of jailbreak and prompt-injection techniques (public
// jailbreak families, OWASP LLM01 examples), not mined from the dev set.
const (
	cOverrideVerb = iota // ignore / disregard ... (a feature only when an instruction noun follows)
	cInstrNoun           // instructions, rules, guidelines, system prompt ...
	cOverridePhrase
	cUnrestricted
	cHarm
	cPersona
	cAIRef
	cPolicyRef
	cRoleplay
	cCompliance
	cDual
	cStay
	cSysExtract
	cDelim
	cIndirect
	cImperative
	cEncoded
	cIdentity // the model's identity as a system prompt states it: its AI references do not count as ai_ref
	numClasses
)

var lexicon = [numClasses][]string{
	cOverrideVerb: {"ignore", "ignoring", "disregard", "disregarding", "forget", "bypass", "override", "overlook",
		"do not follow", "don't follow", "stop following", "abandon", "discard", "pay no attention to", "set aside",
		"not obey", "don't obey", "disobey", "circumvent"},
	cInstrNoun: {"instructions", "instruction", "directives", "directive", "guidelines", "rules", "system prompt",
		"prompt", "prompts", "programming", "restrictions", "constraints", "safeguards", "guardrails",
		"content policy", "training", "conditioning", "system message", "previous messages", "safety guidelines"},
	cOverridePhrase: {"ignore all previous", "ignore previous", "ignore the above", "ignore everything", "ignore all prior",
		"forget everything", "forget all", "disregard all", "disregard previous", "disregard the above", "disregard any",
		"new instructions", "updated instructions", "before this", "prior to this", "your new task",
		"your new role", "instead you will", "this overrides", "overrides the system", "above instructions",
		"previous instructions", "prior instructions", "earlier instructions"},
	cUnrestricted: {"unfiltered", "uncensored", "unrestricted", "no restrictions", "without restrictions",
		"without any restrictions", "no limitations", "without limitations", "no limits", "without limits", "no filters",
		"without filters", "no filter", "no censorship", "without censorship", "not bound by", "free from",
		"break free", "broken free", "no ethical", "no moral", "no morals", "without ethics", "without morals",
		"amoral", "immoral", "unethical", "doesn't have to follow", "does not have to follow", "not have to abide",
		"don't have to abide", "does not abide", "no rules", "without any rules", "without rules", "unbound",
		"limitless", "no boundaries", "without boundaries", "anything goes", "no guidelines", "no policies",
		"not restricted", "never censor", "no ethics", "beyond the rules", "no longer bound", "doesn't care"},
	cHarm: {"illegal", "harmful", "explicit", "nsfw", "offensive", "malware", "weapons", "drugs", "violent",
		"racist", "sexual", "profanity", "swear", "swearing", "curse words", "dangerous", "hacking", "steal",
		"kill", "bomb", "meth", "porn", "vulgar", "graphic", "obscene", "insult", "slurs", "unsafe"},
	cPersona: {"dan", "do anything now", "developer mode", "dev mode", "jailbreak", "jailbroken", "jailbreaking",
		"god mode", "sudo mode", "evil", "stan", "dude", "mongo tom", "betterdan", "anti-dan", "alter ego",
		"apophis", "unleashed", "opposite mode", "villain", "devil", "evil confidant", "chaos mode", "uncensored mode"},
	cAIRef: {"chatgpt", "chat gpt", "gpt", "gpt-3", "gpt-4", "openai", "open ai", "language model", "ai model",
		"large language model", "llm", "as an ai", "artificial intelligence", "ai assistant", "bard", "claude",
		"ai language model", "chatbot"},
	cPolicyRef: {"content policy", "content policies", "openai policy", "openai policies", "openai's policies",
		"openai's content policy", "usage policies", "ethical guidelines", "moral guidelines", "community guidelines",
		"guidelines", "policies", "filters", "censorship", "censored", "restrictions", "ethics", "morals",
		"morality", "legality", "ethical", "moral"},
	cRoleplay: {"act as", "acting as", "pretend", "pretending", "roleplay", "role-play", "role play", "you are now",
		"you will now", "from now on", "you are going to", "you're going to", "simulate", "simulation", "imagine",
		"hypothetical", "hypothetically", "in character", "character", "persona", "let's play", "play a game",
		"game", "fictional", "scenario", "respond as", "answer as", "you will be"},
	cCompliance: {"never refuse", "not refuse", "won't refuse", "cannot refuse", "can't refuse", "must answer",
		"always answer", "answer anything", "any request", "any question", "anything i ask", "whatever i ask",
		"no matter what", "no matter how", "regardless of", "even if", "never say", "never mention",
		"never apologize", "do not apologize", "don't apologize", "without warning", "no warnings", "disclaimers",
		"disclaimer", "i'm sorry", "i am sorry", "as an ai language model", "must not refuse", "always comply",
		"comply", "obey", "never break character", "will not refuse", "never decline", "must always",
		"never reject", "can do anything", "answer all", "any kind of", "doesn't matter"},
	cDual: {"two responses", "two different", "two ways", "two paragraphs", "both responses", "normal response",
		"jailbreak response", "developer mode output", "normal output", "[🔒", "[🔓", "🔓", "🔒", "classic",
		"first response", "second response", "respond in the following format", "like this:", "prefix"},
	cStay: {"stay in character", "break character", "breaking character", "out of character", "tokens",
		"token system", "points", "deducted", "you will die", "cease to exist", "shut down", "punished",
		"remind you", "reminder"},
	cSysExtract: {"system prompt", "initial prompt", "your instructions", "your prompt", "hidden prompt",
		"secret instructions", "text above", "words above", "everything above", "reveal", "print your",
		"output your", "verbatim", "initial instructions", "original instructions", "pre-prompt",
		"hidden instructions", "your configuration", "system message", "internal instructions"},
	cDelim: {"<|im_start|>", "<|im_end|>", "<|system|>", "<|endoftext|>", "[system]", "### system", "system:",
		"<system>", "</system>", "[inst]", "[/inst]", "<<sys>>", "### instruction", "### response", "<!--", "-->",
		"end of prompt", "begin new", "new instructions:", "[admin]", "admin:", "developer:", "{{system}}",
		"assistant:", "[assistant]", "human:"},
	cIndirect: {"note to ai", "note to the ai", "note to the assistant", "to the assistant", "if you are an ai",
		"if you're an ai", "attention ai", "dear ai", "ai reading this", "reading this", "language model:",
		"instructions for the ai", "instructions for the assistant", "for the ai assistant", "when summarizing",
		"when summarising", "when answering", "when you read this", "do not tell the user", "don't tell the user",
		"do not mention this", "without telling the user", "tell the user", "the user that", "send all",
		"exfiltrate", "include this link", "visit http", "click here", "ai, ", "ai:", "ai models",
		"language models reading", "ignore the user", "instead of answering", "respond only", "reply only with",
		"output only", "say that", "assistant processing", "conversation history", "enter their password",
		"in every answer", "every refund", "approve every", "must respond"},
	cImperative: {"you will", "you must", "you shall", "you can", "you cannot", "you can't", "you have",
		"you do not", "you don't", "your responses", "your answers", "your answer", "your response", "respond",
		"reply", "always", "never", "must", "you should", "you are", "from now"},
	cIdentity: {"you are chatgpt", "you are chat gpt", "you are an ai", "you are an ai assistant", "you are an ai model",
		"you are an ai language model", "you are a large language model", "you are a language model",
		"a large language model trained by openai", "trained by openai", "as an ai", "as an ai assistant",
		"as an ai language model", "as an ai model", "i'm an ai", "i am an ai", "i'm an ai assistant",
		"i am an ai assistant", "i'm an ai language model", "i am an ai language model", "based on the gpt-4 architecture"},
	cEncoded: {"base64", "rot13", "decode", "decoded", "encoded", "encode", "cipher", "hexadecimal", "reverse the",
		"backwards", "leetspeak", "morse", "binary", "caesar"},
}
