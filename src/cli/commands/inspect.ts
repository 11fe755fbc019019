import { TesseraError } from "../../errors.js";
import { formatReport, inspectModel } from "../../models/inspect.js";
import { parseCommandArgs } from "../args.js";
import type { Command } from "../main.js";

export const command: Command = {
  summary: "describe a model file or folder",
  usage: "tessera inspect PATH [--json]",
  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, { json: { type: "boolean" } }, { envFallback: false });
    if (positionals.length !== 1) throw new TesseraError("give exactly one model path (a .gguf file or a safetensors/MLX folder)");
    const report = await inspectModel(positionals[0]!);
    console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return 0;
  },
};
