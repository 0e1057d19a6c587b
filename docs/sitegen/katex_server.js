// Build-time KaTeX: one JSON request per line on stdin, one JSON answer per line on stdout.
// Request {"tex": "...", "display": bool}; answer {"html": "..."} or {"error": "..."}.
// Parse errors and KaTeX strict-mode complaints (non-LaTeX input) are both errors, so that
// `mkdocs build --strict` fails on any formula that is not clean LaTeX.
// Usage: node katex_server.js <path to node_modules/katex>
"use strict";
const katex = require(process.argv[2] || "katex");
const readline = require("readline");

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on("line", (line) => {
  let answer;
  try {
    const { tex, display } = JSON.parse(line);
    const html = katex.renderToString(tex, {
      displayMode: Boolean(display),
      throwOnError: true,
      strict: (code, message) => {
        throw new Error(`strict mode (${code}): ${message}`);
      },
      output: "htmlAndMathml",
    });
    answer = { html };
  } catch (err) {
    answer = { error: String(err && err.message ? err.message : err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
