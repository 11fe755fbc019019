import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { createSecretFile, defaultSecretFile } from "../../cluster/secret.js";
import { flag, parseFlags, usageText } from "../flags.js";
import type { Command } from "../main.js";

const FLAGS = {
  force: flag.bool({ help: "replace an existing secret (every machine then needs the new one)" }),
  show: flag.bool({ help: "print the secret itself on stdout (to copy it by hand)" }),
};

/** ~/… for paths under the home folder: the printed commands work on the other machines too. */
function tilde(p: string): string {
  const home = homedir();
  return p.startsWith(home + "/") ? `~${p.slice(home.length)}` : p;
}

export const command: Command = {
  summary:
    "Creates a cluster secret, readable by you only, in the config folder (~/.config/tessera/secret, or " +
    "$XDG_CONFIG_HOME / $TESSERA_CONFIG_DIR), and prints how to use it. Nodes with the same secret form a cluster; " +
    "others cannot join it or read it.",
  usage: usageText("tessera secret [--force] [--show]", FLAGS),
  async run(argv) {
    const { values } = parseFlags(argv, FLAGS, { positionals: { max: 0, usage: "tessera secret [--force] [--show]" } });
    const file = defaultSecretFile();
    const { created } = createSecretFile(file, values.force);
    if (values.show) {
      process.stdout.write(readFileSync(file, "utf8"));
      return 0;
    }
    const shown = tilde(file);
    console.log(
      created
        ? `created ${shown} (readable by you only)`
        : `${shown} already exists: keeping it (--force replaces it)`,
    );
    console.log(
      [
        "Copy that file to the same place on every machine of the cluster (readable by you only: chmod 600),",
        "then on each machine run:",
        `  tessera start --secret-file ${shown} --cluster home`,
      ].join("\n"),
    );
    return 0;
  },
};
