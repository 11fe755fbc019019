import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";

/**
 * Debian's chromium (installed by .ci/run) driven by playwright-core: headless, no sandbox (CI
 * runs as root), nothing that phones home, a fresh profile per run.
 */
export const CHROMIUM = process.env.TESSERA_CHROMIUM ?? "/usr/bin/chromium";
export const SCREENSHOTS = join("test-output", "dashboard");
export const SIZES = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } } as const;

const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

export interface BrowserSession {
  browser: Browser;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<BrowserSession> {
  // playwright gives each launch its own temporary profile (--user-data-dir); the fresh temp dir
  // here holds what chromium writes outside it (crash dumps, caches).
  const home = mkdtempSync(join(tmpdir(), "tessera-chromium-"));
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, env: { ...process.env, HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home } });
  mkdirSync(SCREENSHOTS, { recursive: true });
  return {
    browser,
    close: async () => {
      await browser.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** Console errors and page errors of a page, collected from the start. */
export function consoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  return errors;
}

/** A context whose pages start with `key` as the stored API key (what the key prompt saves). */
export async function contextWithKey(browser: Browser, key: string | null, size: keyof typeof SIZES = "desktop"): Promise<BrowserContext> {
  const ctx = await browser.newContext({ viewport: SIZES[size], colorScheme: "light" });
  // (the callbacks run in the page: globalThis is its window)
  if (key !== null) await ctx.addInitScript((k) => (globalThis as any).localStorage.setItem("tessera.apiKey", k), key);
  return ctx;
}

export async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}
