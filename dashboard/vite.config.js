// The dashboard's build: one small static bundle under dist/dashboard, served by every node at /
// (src/api/dashboard-routes.ts). Relative asset URLs so the page also works behind a path prefix.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here("."),
  base: "./",
  plugins: [svelte()],
  logLevel: "warn",
  build: {
    outDir: here("../dist/dashboard"),
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    target: "es2022",
    reportCompressedSize: false,
    // The Svelte compiler is most of a small build; rolldown's note saying so is noise.
    rolldownOptions: { checks: { pluginTimings: false } },
  },
});
