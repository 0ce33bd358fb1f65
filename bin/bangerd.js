#!/usr/bin/env node
import { main, reportFatal } from '../dist/src/daemon/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e) => process.exit(reportFatal(e)),
);
