import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadOrCreateIdentity, nodeIdFromPublicKey, verifySignature } from "../../src/cluster/identity.js";
import { clusterNameProblem, parsePeers } from "../../src/cluster/options.js";
import { byteSize } from "../../src/units.js";
import { acquirePidLock } from "../../src/cluster/pidlock.js";
import { baseProfile, memoryInfo } from "../../src/cluster/profile.js";
import { removeDir, tempDir } from "./node-process.js";

test("identity: created once (0600), the same id on every load, signatures verify", () => {
  const dir = tempDir();
  try {
    const a = loadOrCreateIdentity(dir);
    assert.match(a.id, /^[0-9a-f]{16}$/);
    assert.equal(a.id, nodeIdFromPublicKey(a.publicKey));
    assert.equal(statSync(join(dir, "identity")).mode & 0o777, 0o600);
    const b = loadOrCreateIdentity(dir);
    assert.equal(b.id, a.id);
    const msg = Buffer.from("hello");
    assert.ok(verifySignature(a.publicKey, msg, b.sign(msg)));
    assert.ok(!verifySignature(a.publicKey, Buffer.from("other"), b.sign(msg)));
    writeFileSync(join(dir, "identity"), readFileSync(join(dir, "identity"), "utf8").replace(/"privateKey":"[^"]+"/, '"privateKey":"AAAA"'));
    assert.throws(() => loadOrCreateIdentity(dir), /identity: not a valid node identity/);
  } finally {
    removeDir(dir);
  }
});

test("pidfile lock: one node per data dir; a stale pidfile is taken over", () => {
  const dir = tempDir();
  try {
    const release = acquirePidLock(dir);
    writeFileSync(join(dir, "node.pid"), `${process.ppid}\n`); // a live process that is not us
    assert.throws(() => acquirePidLock(dir), /another node \(pid \d+\) is running with this data dir/);
    writeFileSync(join(dir, "node.pid"), "999999999\n");
    const again = acquirePidLock(dir);
    assert.equal(readFileSync(join(dir, "node.pid"), "utf8").trim(), String(process.pid));
    again();
    release();
  } finally {
    removeDir(dir);
  }
});

test("start options: sizes, peers and cluster names, with clear errors", () => {
  assert.equal(byteSize("8G"), 8 * 1024 ** 3);
  assert.equal(byteSize("512MiB"), 512 * 1024 ** 2);
  assert.equal(byteSize("1.5gb"), 1.5e9);
  assert.equal(byteSize("4096"), 4096);
  assert.equal(byteSize("lots"), null);
  assert.equal(byteSize("-1G"), null);
  assert.deepEqual(parsePeers("10.0.0.2:52481, [fe80::1]:7,host.lan:9,box,[fe80::2]"), [
    { host: "10.0.0.2", port: 52481, text: "10.0.0.2:52481" },
    { host: "fe80::1", port: 7, text: "[fe80::1]:7" },
    { host: "host.lan", port: 9, text: "host.lan:9" },
    { host: "box", port: 52481, text: "box" },
    { host: "fe80::2", port: 52481, text: "[fe80::2]" },
  ]);
  assert.throws(() => parsePeers("a:70000"), /--peers wants host, host:port/);
  assert.throws(() => parsePeers("a:0"), /--peers wants host, host:port/);
  assert.throws(() => parsePeers("fe80::1:7"), /--peers wants host, host:port/);
  assert.throws(() => parsePeers(" , "), /--peers is empty/);
  assert.equal(clusterNameProblem("home-1.lan_x"), null);
  assert.match(clusterNameProblem("a b")!, /1–64 letters/);
  assert.match(clusterNameProblem("x".repeat(65))!, /1–64 letters/);
});

test("--memory-limit caps the memory a node reports", () => {
  const free = memoryInfo();
  assert.ok(free.totalBytes > 0 && free.availableBytes > 0 && free.availableBytes <= free.totalBytes);
  const capped = memoryInfo(1024 ** 3);
  assert.equal(capped.totalBytes, Math.min(free.totalBytes, 1024 ** 3));
  assert.ok(capped.availableBytes <= 1024 ** 3);
  const p = baseProfile({ memoryLimit: 1024, threads: 3, device: "cpu", worker: false }, { matmulGflops: 12.345, decodeBytesPerSec: 12_345_678_901, providers: ["cpu", "webgpu"] });
  assert.equal(p.memory.totalBytes, 1024);
  assert.deepEqual([p.threads, p.device, p.worker, p.matmulGflops, p.decodeBytesPerSec, p.providers], [3, "cpu", false, 12.3, 12_346_000_000, ["cpu", "webgpu"]]);
});
