#!/usr/bin/env node
// Run dynalite's own command line with the process behaviour of ./emulator-process.js.
//
//   KINESIS_ACTORS_DYNALITE_CLI=<node_modules>/dynalite/cli.js \
//     node dynalite-cli.js --host 127.0.0.1 --port 4568 [other dynalite options]
//
// The arguments are dynalite's (its CLI reads process.argv from the third entry on, as when
// it runs as its own script).
'use strict'

require('./emulator-process')('dynalite')

const cli = process.env.KINESIS_ACTORS_DYNALITE_CLI
if (!cli) {
  console.error('dynalite-cli: KINESIS_ACTORS_DYNALITE_CLI is not set')
  process.exit(2)
}
require(cli)
