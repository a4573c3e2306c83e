// Parses a Mermaid flowchart from stdin with the real Mermaid library (under jsdom) and
// prints what it understood as JSON: {"vertices": [{"id", "text"}], "edges": [{"start",
// "end", "text"}]}. A text Mermaid refuses exits 1 with its message. (capstan's tests.)
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });

const text = readFileSync(0, "utf8");
try {
  await mermaid.parse(text);
  const { db } = await mermaid.mermaidAPI.getDiagramFromText(text);
  const vertices = [...db.getVertices().values()].map((v) => ({ id: v.id, text: v.text }));
  const edges = db.getEdges().map((e) => ({ start: e.start, end: e.end, text: e.text }));
  process.stdout.write(JSON.stringify({ vertices, edges }) + "\n");
} catch (e) {
  process.stderr.write(String(e.message || e) + "\n");
  process.exit(1);
}
