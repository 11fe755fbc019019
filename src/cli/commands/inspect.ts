import { TesseraError } from "../../errors.js";
import { formatReport, inspectModel } from "../../models/inspect.js";
import { checkPath, flag, parseFlags, usageText } from "../flags.js";
import type { Command } from "../main.js";

const FLAGS = { json: flag.bool({ help: "print the report as JSON" }) };
const SYNOPSIS = "tessera inspect MODEL [--json]";

export const command: Command = {
  summary: "Describes a model file or folder: architecture, shapes, tensor types, tokenizer, context length.",
  usage: usageText(SYNOPSIS, FLAGS, ["MODEL is a .gguf file or a safetensors / MLX folder."]),
  async run(argv) {
    const { values, positionals } = parseFlags(argv, FLAGS, { positionals: { max: 1, usage: SYNOPSIS } });
    const model = positionals[0];
    if (model === undefined) throw new TesseraError(`missing MODEL: give one model path, a .gguf file or a safetensors/MLX folder (usage: ${SYNOPSIS})`);
    checkPath(model, "input", "");
    const report = await inspectModel(model);
    console.log(values.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return 0;
  },
};
