// The independent check of the Sigstore bundles Moorage writes: npm @sigstore/verify (the
// verifier of sigstore-js, used by npm itself) verifies one bundle offline with one public
// key. Input: one JSON argument {"modules": <.npm-packages/node_modules>, "bundle": <bundle
// JSON text>, "key": <base64 DER SubjectPublicKeyInfo>}. A key-signed bundle has no Rekor
// entry and no timestamp, so the verifier is told to require none (tlog, CT log and timestamp
// thresholds 0) and is given the key under the bundle's hint, in an otherwise empty trusted
// root. Prints {"ok": true} or {"ok": false, "error": "..."}; exit status 0 or 1.
import { createRequire } from 'node:module';
import path from 'node:path';

const input = JSON.parse(process.argv[2]);
const require = createRequire(path.join(input.modules, 'noop.js'));
const { bundleFromJSON } = require('@sigstore/bundle');
const { Verifier, toSignedEntity, toTrustMaterial } = require('@sigstore/verify');

try {
  const bundle = bundleFromJSON(JSON.parse(input.bundle));
  const hint = bundle.verificationMaterial.content.publicKey?.hint;
  const root = { certificateAuthorities: [], timestampAuthorities: [], tlogs: [], ctlogs: [] };
  const keys = { [hint]: { rawBytes: Buffer.from(input.key, 'base64'), keyDetails: undefined } };
  const verifier = new Verifier(toTrustMaterial(root, keys),
    { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
  verifier.verify(toSignedEntity(bundle));
  console.log(JSON.stringify({ ok: true }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, error: `${err.code ?? err.name}: ${err.message}` }));
  process.exitCode = 1;
}
