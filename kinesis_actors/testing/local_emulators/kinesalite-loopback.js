#!/usr/bin/env node
// Start kinesalite (in-memory) bound to one interface, loopback by default.
//
// kinesalite's own CLI has no host option and listens on every interface; this
// wrapper uses its module API instead.
//
//   node kinesalite-loopback.js [port] [host]      (defaults: 4567 127.0.0.1)
//
// `require('kinesalite')` is resolved through NODE_PATH (kinesis_actors.local sets
// it to the emulators' node_modules folder).
//
// Streams are ACTIVE at once (no CREATING/DELETING/UPDATING delay) and the shard
// limit is raised so that a whole test session can share one server.
//
// With KINESIS_ACTORS_EXIT_WITH_PARENT=1 the server exits when its parent process
// goes away (re-parented), so a killed test run does not leave it behind.
'use strict'

const kinesalite = require('kinesalite')

const port = parseInt(process.argv[2] || '4567', 10)
const host = process.argv[3] || '127.0.0.1'
const shardLimit = parseInt(process.env.KINESALITE_SHARD_LIMIT || '100000', 10)

if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('kinesalite-loopback: invalid port %j', process.argv[2])
  process.exit(2)
}

const server = kinesalite({
  createStreamMs: 0,
  deleteStreamMs: 0,
  updateStreamMs: 0,
  shardLimit: shardLimit,
})

server.on('error', (err) => {
  console.error('kinesalite-loopback: %s', err.message)
  process.exit(1)
})

server.listen(port, host, () => {
  const address = server.address()
  console.log('kinesalite listening at http://%s:%d', address.address, address.port)
})

// The store is in memory: nothing to flush, so stop at once rather than wait for
// clients' keep-alive connections to close.
process.on('SIGTERM', () => process.exit(0))
process.on('SIGINT', () => process.exit(0))

if (process.env.KINESIS_ACTORS_EXIT_WITH_PARENT === '1') {
  const parent = process.ppid
  setInterval(() => {
    if (process.ppid !== parent) process.exit(0)
  }, 1000).unref()
}
