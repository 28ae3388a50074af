// Lints the SDK (js/) and the demo (demo/) with one configuration, kept
// beside the SDK's dependencies in js/eslint.config.js.
export { default } from "./js/eslint.config.js";
