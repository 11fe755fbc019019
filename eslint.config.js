import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "dashboard/dist/**", "bench/results/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ["**/*.js"],
    languageOptions: { globals: { process: "readonly", console: "readonly", URL: "readonly" } },
  },
  // Boundaries between the rooms (ARCHITECTURE.md): what a folder may not import.
  {
    files: ["src/placement/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { regex: "^\\.\\./(?!models/types\\.js$|errors\\.js$|units\\.js$|parallel-defaults\\.js$)", message: "placement is pure: it imports only the model contracts (models/types.ts), errors, units and the batching defaults" },
            { regex: "^(node:|[a-z@])", message: "placement is pure: no I/O, no packages" },
          ],
        },
      ],
    },
  },
  {
    files: ["src/transport/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ regex: "^\\.\\./(cli|models|engine|runner|cluster|placement|instances|api)/", message: "the data plane knows nothing of models, commands or the cluster" }] }],
    },
  },
  {
    files: ["src/engine/**/*.ts"],
    rules: {
      "no-restricted-imports": ["error", { patterns: [{ regex: "^(\\.\\./)+(runner|transport|cluster|instances|api|cli)/", message: "the engine opens no sockets and knows no runner or cluster" }] }],
    },
  },
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/no-explicit-any": "off",
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
);
