// A TUF client that is not ours: tuf-js with its default settings
// (prefixTargetsWithHash on) refreshes the catalog's metadata from a pinned
// root and downloads the targets named on the command line.
//
//   node client.js CONFIG.json
//
// CONFIG: {metadataBaseUrl, targetBaseUrl, metadataDir (holding the pinned
// root.json), targetDir, targets: [path, ...]}. Prints one JSON line:
// {"ok": true, "targets": {path: {file, length}}} or {"ok": false,
// "error": "..."}; exits 1 on error.
'use strict';
const fs = require('fs');
const { Updater } = require('tuf-js');

async function main() {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  const updater = new Updater({
    metadataBaseUrl: cfg.metadataBaseUrl,
    targetBaseUrl: cfg.targetBaseUrl,
    metadataDir: cfg.metadataDir,
    targetDir: cfg.targetDir,
  });
  await updater.refresh();
  const out = {};
  for (const path of cfg.targets) {
    const info = await updater.getTargetInfo(path);
    if (!info) {
      throw new Error(`${path} is not a signed target`);
    }
    const file = await updater.downloadTarget(info);
    out[path] = { file, length: info.length };
  }
  return out;
}

main().then(
  (targets) => console.log(JSON.stringify({ ok: true, targets })),
  (err) => {
    console.log(JSON.stringify({ ok: false, error: `${err.name}: ${err.message}` }));
    process.exit(1);
  },
);
