// Parses one AsyncAPI document (read from stdin) with the official parser and prints its diagnostics as JSON,
// one object per finding: {severity: "error"|"warning"|"info"|"hint", code, message, path}.
// Exit status 0 only when the parser built a document and reported no error.
"use strict";
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");

const SEVERITY = Object.fromEntries(Object.entries(DiagnosticSeverity).map(([name, value]) => [value, name.toLowerCase()]));

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const { document, diagnostics } = await new Parser().parse(Buffer.concat(chunks).toString("utf8"));
  const findings = diagnostics.map((d) => ({
    severity: SEVERITY[d.severity], code: String(d.code), message: d.message, path: d.path.join("/"),
  }));
  process.stdout.write(JSON.stringify({ parsed: document !== undefined, diagnostics: findings }) + "\n");
  process.exitCode = document !== undefined && !findings.some((f) => f.severity === "error") ? 0 : 1;
}

main().catch((error) => { console.error(error); process.exitCode = 2; });
