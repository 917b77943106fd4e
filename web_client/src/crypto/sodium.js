/**
 * The one place that loads libsodium (docs/protocol-crypto.md §3.4).
 *
 * The module imports the bare specifier `libsodium-wrappers-sumo` and waits for
 * its WebAssembly to initialise (top-level await), so every other module can
 * call libsodium synchronously once this one is imported.
 *
 * - In node, the specifier resolves to the package's ESM build
 *   (`node_modules/libsodium-wrappers-sumo/dist/modules-sumo-esm/libsodium-wrappers.mjs`).
 * - In the browser, the page maps it with an import map; that file itself
 *   imports the bare specifier `libsodium-sumo`, which must be mapped too:
 *
 *       <script type="importmap">
 *       { "imports": {
 *           "libsodium-wrappers-sumo": "/vendor/libsodium-wrappers-sumo/libsodium-wrappers.mjs",
 *           "libsodium-sumo": "/vendor/libsodium-sumo/libsodium-sumo.mjs"
 *       } }
 *       </script>
 *
 * The sumo build is needed for `crypto_pwhash` (argon2id) and
 * `crypto_auth_hmacsha256`; its WebAssembly is embedded in `libsodium-sumo.mjs`.
 */
import sodiumModule from 'libsodium-wrappers-sumo';

await sodiumModule.ready;

/** The initialised libsodium object. */
export const sodium = sodiumModule;

/**
 * Resolves to the initialised libsodium object (already initialised once this module is loaded).
 * @returns {Promise<typeof sodiumModule>}
 */
export async function ready() {
  return sodium;
}
