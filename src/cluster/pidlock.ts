import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TesseraError } from "../errors.js";
import { isProcessAlive } from "../process-alive.js";

/**
 * One node per data dir: <data-dir>/node.pid holds the running node's pid. A pidfile whose
 * process is gone is stale and taken over. Returns a release function.
 */
export function acquirePidLock(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "node.pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: "wx" });
      let released = false;
      return () => {
        if (released) return;
        released = true;
        try {
          if (readFileSync(file, "utf8").trim() === String(process.pid)) rmSync(file);
        } catch {
          /* already gone */
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw new TesseraError(`cannot write pidfile: ${(e as Error).message}`, file);
    }
    const pid = Number(readFileSync(file, "utf8").trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isProcessAlive(pid)) {
      throw new TesseraError(`another node (pid ${pid}) is running with this data dir; stop it or use another --data-dir`, dir);
    }
    rmSync(file, { force: true });
  }
  throw new TesseraError("cannot take the pidfile lock", file);
}
