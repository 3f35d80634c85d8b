// Validates an AsyncAPI document with the AsyncAPI project's own parser (@asyncapi/parser): the spec's JSON
// Schema, references, and the parser's Spectral rule set. Prints every diagnostic; exits 1 on any error (severity
// 0) and, with --strict, on warnings too.
//
//   node tools/asyncapi/validate.mjs docs/asyncapi.json [--strict]
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const args = process.argv.slice(2);
const strict = args.includes("--strict");
const file = args.find((a) => !a.startsWith("--"));
if (!file) {
  console.error("usage: validate.mjs <asyncapi document> [--strict]");
  process.exit(64);
}
const parser = new Parser();
const { document, diagnostics } = await parser.parse(await readFile(file, "utf8"), { source: file });
const names = ["error", "warning", "information", "hint"];
for (const d of diagnostics) {
  console.log(`${names[d.severity]} ${d.code} at ${d.path.join(".") || "(root)"}: ${d.message}`);
}
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
const warnings = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning);
if (!document || errors.length || (strict && warnings.length)) {
  console.log(`INVALID: ${errors.length} errors, ${warnings.length} warnings`);
  process.exit(1);
}
console.log(
  `VALID AsyncAPI ${document.version()}: ${document.channels().length} channels, ` +
    `${document.operations().length} operations, ${document.components().messages().length} messages ` +
    `(${warnings.length} warnings)`,
);
