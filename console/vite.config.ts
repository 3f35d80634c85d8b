import { defineConfig } from "vite";

// Served by the gateway at /console/ (services/inbox/src/mailstream_inbox/api/console.py). Asset names carry a
// content hash, which is what lets the gateway cache them as immutable.
export default defineConfig({
  base: "/console/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    assetsInlineLimit: 0, // no data: URLs for scripts; everything is a file under the CSP's 'self'
    modulePreload: { polyfill: false }, // the polyfill would be the only script not needed by modern browsers
  },
  server: {
    // `npm run dev`: the API of a stack started by scripts/run.sh
    proxy: { "/v1": "http://127.0.0.1:8000" },
  },
});
