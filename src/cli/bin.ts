import { main } from "./main.js";

// Entry for spawning the CLI as a child process (tests, local clusters): `node <this file> <command> ...`.
process.exitCode = await main(process.argv.slice(2));
