// Regenerates tiktoken_counts.jsonl: token counts of the strings in
// tiktoken_strings.jsonl computed by OpenAI's tokenizer (the "tiktoken" npm
// package 1.0.22: WASM build of openai/tiktoken's Rust core, encode_ordinary).
//
//   npm install tiktoken@1.0.22
//   node gen_tiktoken_counts.cjs tiktoken_strings.jsonl > tiktoken_counts.jsonl
//
// tiktoken_strings.jsonl is written by `go test -run TestWriteOracleStrings`
// with TOKENS_WRITE_STRINGS=1 (see oracle_test.go).
const { get_encoding } = require("tiktoken");
const fs = require("fs");
const o200k = get_encoding("o200k_base"), cl100k = get_encoding("cl100k_base");
for (const line of fs.readFileSync(process.argv[2], "utf8").split("\n")) {
  if (!line) continue;
  const s = JSON.parse(line);
  process.stdout.write(JSON.stringify({
    s,
    cl100k_base: cl100k.encode_ordinary(s).length,
    o200k_base: o200k.encode_ordinary(s).length,
  }) + "\n");
}
