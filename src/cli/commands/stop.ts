import { TesseraError } from "../../errors.js";
import { baseUrl, errorText, request } from "../api-client.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../main.js";

export const command: Command = {
  summary: "Stop an instance everywhere (its runners end, its memory is freed; a kept one is no longer kept).",
  usage: "tessera stop ID [--url http://host:52480]",
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { url: { type: "string" } });
    if (positionals.length !== 1) throw new TesseraError("tessera stop takes one instance id (see `tessera ps`)");
    const id = positionals[0]!;
    const base = baseUrl(values.url);
    const r = await request(base, "DELETE", `/instances/${encodeURIComponent(id)}`);
    if (r.status !== 200) throw new TesseraError(errorText(r), id);
    console.log(`stopped ${id}`);
    return 0;
  },
};
