import { existsSync, readFileSync } from "node:fs";

// The package.json is two levels up from dist/src/version.js and one from src/version.ts (tsx).
const url = [new URL("../../package.json", import.meta.url), new URL("../package.json", import.meta.url)].find((u) => {
  try {
    return existsSync(u) && (JSON.parse(readFileSync(u, "utf8")) as { name?: string }).name === "tessera";
  } catch {
    return false;
  }
});
const pkg = url ? (JSON.parse(readFileSync(url, "utf8")) as { version: string }) : { version: "0.0.0" };
export const version: string = pkg.version;
