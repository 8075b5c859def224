// Renders chat templates with @huggingface/jinja, the independent reference
// for the Go renderer (TestTemplatesMatchReference). Reads a JSON array of
// {template, vars, now} on stdin and writes a JSON array of {out} or {error}.
// Usage: node hfrender.mjs /path/to/hfjinja/dist/index.js
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const { Template } = await import(pathToFileURL(process.argv[2]).href);
const cases = JSON.parse(readFileSync(0, "utf8"));
// The reference's strftime_now reads the clock (new Date()) in local time;
// pin both so the Go side, given the same instant, renders the same text.
process.env.TZ = "UTC";
const RealDate = Date;
let now = 0;
globalThis.Date = class extends RealDate {
  constructor(...a) { if (a.length === 0) super(now); else super(...a); }
  static now() { return now; }
};
// normalize hands the template what the engine documents it hands: content
// lists joined to their text, null content as "", and tool-call arguments
// (a JSON string in the OpenAI API) as objects.
function normalize(vars) {
  for (const m of vars.messages) {
    if (Array.isArray(m.content)) m.content = m.content.map((p) => p.text).join("");
    if (m.content === null || m.content === undefined) m.content = "";
    if (m.role === "developer") m.role = "system";
    for (const call of m.tool_calls ?? []) {
      if (typeof call.function.arguments === "string") call.function.arguments = JSON.parse(call.function.arguments);
    }
  }
  return vars;
}

const results = cases.map((c) => {
  try {
    now = RealDate.parse(c.now);
    return { out: new Template(c.template).render(normalize(c.vars)) };
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) };
  }
});
process.stdout.write(JSON.stringify(results));
