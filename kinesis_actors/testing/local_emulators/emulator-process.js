// Process behaviour shared by the emulator wrappers: how they stop, and that a client which
// goes away mid-request does not take the server down for every other client.
//
//   require('./emulator-process')('kinesalite')
//
// kinesalite and dynalite rethrow any error of an incoming request from its 'error' event.
// Since Node.js 15 a request whose client closes the connection before the whole body has
// arrived ends with such an error ("aborted", ECONNRESET), so one client that was killed or
// cut off mid-send would end the server (and every test after it would see "connection
// refused"). That error is logged and survived: the request never reached the emulator's
// store and nobody is left to answer. Any other uncaught error still ends the server, with
// its stack in the server's log.
//
// SIGTERM and SIGINT end the server at once: the store is in memory, nothing to flush.
// With KINESIS_ACTORS_EXIT_WITH_PARENT=1 the server also exits when its parent process goes
// away (it is re-parented), so a killed test run does not leave it behind.
'use strict'

function isClientAbort (err) {
  return err instanceof Error && err.code === 'ECONNRESET' && err.message === 'aborted'
}

module.exports = function emulatorProcess (name) {
  process.on('uncaughtException', (err) => {
    if (isClientAbort(err)) {
      console.error('%s: a client closed its connection mid-request; that request is dropped', name)
      return
    }
    console.error('%s: uncaught error, stopping:', name, err && err.stack ? err.stack : err)
    process.exit(1)
  })

  process.on('SIGTERM', () => process.exit(0))
  process.on('SIGINT', () => process.exit(0))

  if (process.env.KINESIS_ACTORS_EXIT_WITH_PARENT === '1') {
    const parent = process.ppid
    setInterval(() => {
      if (process.ppid !== parent) process.exit(0)
    }, 1000).unref()
  }
}
