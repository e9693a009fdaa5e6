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
// How it stops, and that a client leaving mid-request does not stop it: see
// ./emulator-process.js.
'use strict'

require('./emulator-process')('kinesalite')

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
