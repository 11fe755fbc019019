/** Whether process `pid` exists (EPERM: it does, owned by someone else). For stale pidfiles and temp dirs. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
